/** Portal login use cases: password login → session, logout, who is signed in. */
import { authenticatePassword } from '@argos/shared/auth';
import { appendAudit } from '@argos/shared/audit';
import { createSession, getSessionByToken, revokeSession, sessionAlive } from '@argos/shared/repos/sessions';
import type { PortalDeps } from './app.ts';
import type { UserView } from '../verify/lookups.ts';

export type PasswordLoginResult =
  | { kind: 'ok'; token: string; remember: boolean; lifetimeS: number }
  | { kind: 'failed' }
  | { kind: 'blocked'; retryAfterS: number };

export class LoginService {
  constructor(private readonly deps: PortalDeps) {}

  async passwordLogin(a: { username: string; password: string; remember: boolean; ip: string; userAgent: string | null }): Promise<PasswordLoginResult> {
    const { db, state } = this.deps;
    const r = await authenticatePassword({ db, regulator: this.deps.regulator, log: this.deps.log, realm: 'portal' }, a);
    if (r.kind === 'blocked') return r;
    if (r.kind === 'failed') return { kind: 'failed' };
    const user = r.user;
    const s = state.settings;
    const lifetimeS = a.remember ? s['session.remember_lifetime'] : s['session.lifetime'];
    const now = state.now();
    const created = await db.write(async (tx) => {
      const c = await createSession(
        tx,
        { kind: 'portal', userId: user.id, factors: 1, authMethod: 'password', remember: a.remember, lifetimeS, idleTimeoutS: s['session.idle_timeout'], ip: a.ip, userAgent: a.userAgent },
        now,
      );
      await tx.run('UPDATE users SET last_login_at = ? WHERE id = ?', [now, user.id]);
      await appendAudit(tx, { name: `user:${user.username}`, ip: a.ip, userAgent: a.userAgent }, { action: 'portal.login.success', target: user.username, details: { session: c.id, method: 'password' } });
      return c;
    });
    return { kind: 'ok', token: created.token, remember: a.remember, lifetimeS };
  }

  async logout(token: string, who: { ip: string; userAgent: string | null }): Promise<void> {
    const { db, state } = this.deps;
    const s = await getSessionByToken(db, token);
    state.forgetSession(token);
    if (!s || s.kind !== 'portal' || s.revokedAt) return;
    const user = state.users.get(s.userId);
    await db.write(async (tx) => {
      await revokeSession(tx, s.id);
      await appendAudit(tx, { name: `user:${user?.username ?? s.userId}`, ...who }, { action: 'portal.logout', target: user?.username ?? String(s.userId), details: { session: s.id } });
    });
  }

  async currentUser(token: string): Promise<UserView | null> {
    const s = await this.deps.state.session(token, false);
    if (!s || s.kind !== 'portal' || !sessionAlive(s, this.deps.state.now())) return null;
    const u = this.deps.state.users.get(s.userId);
    return u && !u.disabled ? u : null;
  }
}
