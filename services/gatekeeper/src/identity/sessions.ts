/**
 * Issuing visitor sessions: always a fresh random token (no fixation), lifetimes from settings, the login
 * audited with the session. `issue` waits for the write (portal); `issueInBackground` caches the session at
 * once and enqueues the write (the /verify handoff, which must not wait on a write).
 */
import type { Database } from '@argos/shared/db/sqlite';
import type { Logger } from '@argos/shared/log';
import { appendAudit } from '@argos/shared/audit';
import { randomToken } from '@argos/shared/crypto';
import { createSession, insertSessionWithToken, type Session } from '@argos/shared/repos/sessions';
import type { GatekeeperState } from '../state.ts';

export interface SessionRequest {
  userId: number;
  factors: number;
  authMethod: string;
  remember: boolean;
  ip: string;
  userAgent: string | null;
}

export class SessionIssuer {
  constructor(private readonly deps: { db: Database; state: GatekeeperState; log: Logger }) {}

  private limits(remember: boolean) {
    const s = this.deps.state.settings;
    return { lifetimeS: remember ? s['session.remember_lifetime'] : s['session.lifetime'], idleTimeoutS: s['session.idle_timeout'] };
  }

  async issue(r: SessionRequest, auditAction: string): Promise<{ token: string; id: number; lifetimeS: number }> {
    const { lifetimeS, idleTimeoutS } = this.limits(r.remember);
    const now = this.deps.state.now();
    const user = this.deps.state.users.get(r.userId);
    const created = await this.deps.db.write(async (tx) => {
      const c = await createSession(tx, { kind: 'portal', userId: r.userId, factors: r.factors, authMethod: r.authMethod, remember: r.remember, lifetimeS, idleTimeoutS, ip: r.ip, userAgent: r.userAgent }, now);
      await tx.run('UPDATE users SET last_login_at = ? WHERE id = ?', [now, r.userId]);
      await appendAudit(tx, { name: `user:${user?.username ?? r.userId}`, ip: r.ip, userAgent: r.userAgent }, {
        action: auditAction,
        target: user?.username ?? String(r.userId),
        details: { session: c.id, method: r.authMethod, factors: r.factors, remember: r.remember },
      });
      return c;
    });
    return { token: created.token, id: created.id, lifetimeS };
  }

  issueInBackground(r: SessionRequest): { token: string; lifetimeS: number } {
    const { lifetimeS, idleTimeoutS } = this.limits(r.remember);
    const now = this.deps.state.now();
    const token = randomToken(32);
    const session: Session = {
      id: -1, kind: 'portal', userId: r.userId, factors: r.factors, authMethod: r.authMethod, remember: r.remember, createdAt: now, lastSeenAt: now,
      expiresAt: now + lifetimeS * 1000, idleTimeoutS, ip: r.ip, userAgent: r.userAgent, country: null, csrfSecret: null, reauthAt: now, revokedAt: null,
    };
    this.deps.state.rememberSession(token, session);
    const user = this.deps.state.users.get(r.userId);
    this.deps.db
      .write(async (tx) => {
        session.id = await insertSessionWithToken(tx, token, { kind: 'portal', userId: r.userId, factors: r.factors, authMethod: r.authMethod, remember: r.remember, lifetimeS, idleTimeoutS, ip: r.ip, userAgent: r.userAgent }, now);
        await appendAudit(tx, { name: `user:${user?.username ?? r.userId}`, ip: r.ip, userAgent: r.userAgent }, { action: 'portal.session.handoff', target: user?.username ?? '', details: { session: session.id } });
      })
      .catch((err) => this.deps.log.error({ err }, 'handoff session write failed'));
    return { token, lifetimeS };
  }
}
