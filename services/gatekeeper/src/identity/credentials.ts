/**
 * Credentials other than the session cookie, and the session handoff across cookie domains:
 * - API tokens: looked up in memory by SHA-256 (the live set reloads with the change signal); last-used throttled.
 * - Basic: regulated like a login (banned pair → refused before hashing), bounded hashing, successful checks
 *   cached by a hash of the credentials for a short time so a Basic client does not pay argon2 on every request.
 * - Handoff: one-time tokens the portal creates, redeemed by /verify on the target host (bound to host and browser).
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Config } from '@argos/shared/config';
import type { Database } from '@argos/shared/db/sqlite';
import type { Logger } from '@argos/shared/log';
import type { Regulator } from '@argos/shared/regulation';
import { appendAudit } from '@argos/shared/audit';
import { hashToken } from '@argos/shared/crypto';
import { touchToken, TOKEN_RE } from '@argos/shared/repos/tokens';
import { getUser } from '@argos/shared/repos/users';
import { saveBan } from '@argos/shared/repos/bans';
import { verifyPassword, HashQueueFull } from '@argos/shared/password';
import { domainCovers } from '@argos/shared/hostname';
import { serializeCookie } from '@argos/shared/http';
import type { GatekeeperState } from '../state.ts';
import type { TokenView } from '../verify/lookups.ts';
import { EphemeralStore } from './ephemeral.ts';
import { SessionIssuer } from './sessions.ts';

const TOUCH_EVERY_MS = 60_000;
const BASIC_CACHE_MS = 120_000;
export const SESSION_COOKIE = 'argos_session';

interface Handoff {
  userId: number;
  factors: number;
  authMethod: string;
  remember: boolean;
  host: string;
  rd: string;
  binding: string;
}

export const browserBinding = (ip: string, userAgent: string | null) => createHash('sha256').update(`${ip}\0${userAgent ?? ''}`).digest('base64url');

export class Credentials {
  private readonly basicCache = new LRUCache<string, { userId: number }>({ max: 10_000, ttl: BASIC_CACHE_MS });
  private readonly touched = new LRUCache<number, number>({ max: 10_000 });
  readonly handoffs: EphemeralStore<Handoff>;

  constructor(
    private readonly deps: { config: Config; db: Database; state: GatekeeperState; regulator: Regulator; log: Logger; sessions: SessionIssuer },
  ) {
    this.handoffs = new EphemeralStore<Handoff>({ max: 10_000, ttlMs: 60_000 });
  }

  token(value: string, touch: boolean): TokenView | null {
    if (!TOKEN_RE.test(value)) return null;
    const t = this.deps.state.tokens.get(hashToken(value));
    if (!t) return null;
    const now = this.deps.state.now();
    if (touch && now - (this.touched.get(t.id) ?? 0) > TOUCH_EVERY_MS) {
      this.touched.set(t.id, now);
      this.deps.db
        .write(async (tx) => {
          await touchToken(tx, t.id, now);
          await appendAudit(tx, { name: 'system' }, { action: 'token.use', target: String(t.id), details: { name: t.name } });
        })
        .catch((err) => this.deps.log.warn({ err }, 'token touch failed'));
    }
    return { id: t.id, userId: t.userId, hosts: t.hosts, expiresAt: t.expiresAt, factors: t.factors, origin: t.origin, adminScope: t.adminScope };
  }

  async basic(username: string, password: string, ip: string): Promise<number | null> {
    const { regulator } = this.deps;
    const key = createHash('sha256').update(`${username}\0${password}`).digest('base64url');
    if (regulator.blockedFor(ip, username) > 0) return null;
    const cached = this.basicCache.get(key);
    if (cached) return cached.userId;
    // One uncached check at a time per client, counted before the next: a parallel burst gets no extra guesses.
    const attempt = regulator.begin(ip, username);
    if (!attempt.ok) return null;
    try {
      return await this.checkBasic(username, password, ip, key);
    } finally {
      attempt.done();
    }
  }

  private async checkBasic(username: string, password: string, ip: string, key: string): Promise<number | null> {
    const { regulator, db, log } = this.deps;
    let userId: number | null = null;
    try {
      const user = await getUser(db, username);
      const ok = await verifyPassword(user?.passwordHash ?? null, password);
      if (ok && user && !user.disabled) userId = user.id;
    } catch (e) {
      if (e instanceof HashQueueFull) return null;
      throw e;
    }
    if (userId === null) {
      this.failure(ip, username);
      return null;
    }
    this.basicCache.set(key, { userId });
    regulator.succeed(ip, username);
    log.debug({ username, ip }, 'basic credentials accepted');
    return userId;
  }

  /** Counts a failed credential; a ban it triggers is persisted and audited (enqueued, never awaited by /verify). */
  failure(ip: string, username?: string): void {
    const ban = this.deps.regulator.fail(ip, username);
    this.deps.db
      .write(async (tx) => {
        await appendAudit(tx, { name: 'anonymous', ip }, { action: 'credential.failure', target: username ?? '', details: { via: username ? 'basic' : 'token' } });
        if (ban) {
          await saveBan(tx, ban);
          await appendAudit(tx, { name: 'system', ip }, { action: 'regulation.ban', target: ban.key, details: { until: ban.until, strikes: ban.strikes } });
        }
      })
      .catch((err) => this.deps.log.warn({ err }, 'recording a credential failure failed'));
  }

  /** Portal side: a one-time token that lets `host` set its own cookie. */
  createHandoff(h: Handoff): string {
    return this.handoffs.put(h);
  }

  async redeemHandoff(token: string, host: string, ip: string, userAgent: string | null): Promise<{ location: string; setCookie: string } | null> {
    // Checked before it is consumed: someone who only saw the link cannot burn it for its owner.
    const h = this.handoffs.peek(token);
    if (!h || h.host !== host || h.binding !== browserBinding(ip, userAgent) || !this.handoffs.take(token)) return null;
    const user = this.deps.state.users.get(h.userId);
    if (!user || user.disabled) return null;
    const issued = this.deps.sessions.issueInBackground({ userId: h.userId, factors: h.factors, authMethod: h.authMethod, remember: h.remember, ip, userAgent });
    const domain = this.deps.state.cookieDomains.find((d) => domainCovers(d, host)) ?? null;
    const secure = new URL(h.rd).protocol === 'https:';
    return {
      location: h.rd,
      setCookie: serializeCookie(SESSION_COOKIE, issued.token, { domain, secure, maxAgeS: h.remember ? issued.lifetimeS : null }),
    };
  }
}
