/**
 * Password authentication shared by the visitor portal and the operator panel: regulation first
 * (a banned client is refused before any hashing), constant-work verification (dummy hash for unknown
 * users, disabled users still hashed), audit of every success and failure with its real reason, and
 * one vague answer for the caller to show.
 */
import type { Database } from './db/sqlite.ts';
import type { Regulator } from './regulation.ts';
import { getUser, normalizeUsername, type User } from './repos/users.ts';
import { HashQueueFull, verifyPassword } from './password.ts';
import { appendAudit, recordEvent } from './audit.ts';
import { saveBan } from './repos/bans.ts';
import type { Logger } from './log.ts';

export interface LoginAttempt {
  username: string;
  password: string;
  ip: string;
  userAgent: string | null;
}

export type AuthResult =
  | { kind: 'ok'; user: User }
  | { kind: 'failed'; reason: string }
  | { kind: 'blocked'; retryAfterS: number };

export interface AuthDeps {
  db: Database;
  regulator: Regulator;
  log: Logger;
  /** 'portal' or 'panel': recorded in the audit entry. */
  realm: 'portal' | 'panel';
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Checks a username and password. Never says which part was wrong; the audit log and the log line do. */
export async function authenticatePassword(deps: AuthDeps, a: LoginAttempt, accept: (u: User) => string | null = () => null): Promise<AuthResult> {
  const username = normalizeUsername(a.username);
  const attempt = deps.regulator.begin(a.ip, username);
  if (!attempt.ok) {
    const blocked = attempt.retryAfterS;
    await recordEvent(deps.db, { name: 'anonymous', ip: a.ip, userAgent: a.userAgent }, {
      action: `${deps.realm}.login.blocked`,
      target: username,
      details: { retry_after_s: blocked },
    });
    return { kind: 'blocked', retryAfterS: blocked };
  }
  try {
    return await checkPassword(deps, a, username, accept);
  } finally {
    // Released only after the attempt was counted: the next attempt of this client or username sees it.
    attempt.done();
  }
}

async function checkPassword(deps: AuthDeps, a: LoginAttempt, username: string, accept: (u: User) => string | null): Promise<AuthResult> {
  const delay = deps.regulator.slowdownMs(username);
  if (delay) await (deps.sleep ?? defaultSleep)(delay);

  let reason: string | null;
  let user: User | null;
  try {
    user = username && a.password ? await getUser(deps.db, username) : null;
    const ok = await verifyPassword(user?.passwordHash ?? null, a.password);
    if (!user) reason = 'unknown_user';
    else if (!ok) reason = 'wrong_password';
    else if (user.disabled) reason = 'user_disabled';
    else reason = accept(user);
  } catch (e) {
    if (!(e instanceof HashQueueFull)) throw e;
    deps.log.warn({ ip: a.ip }, 'password hashing queue full: refusing login');
    return { kind: 'blocked', retryAfterS: 5 };
  }

  const actor = { name: user ? `user:${user.username}` : 'anonymous', ip: a.ip, userAgent: a.userAgent };
  if (reason || !user) {
    const ban = deps.regulator.fail(a.ip, username || undefined);
    deps.log.info({ realm: deps.realm, username, ip: a.ip, reason }, 'login failed');
    await deps.db.write(async (tx) => {
      await appendAudit(tx, actor, { action: `${deps.realm}.login.failure`, target: username, details: { reason } });
      if (ban) {
        await saveBan(tx, ban);
        await appendAudit(tx, { name: 'system', ip: a.ip }, { action: 'regulation.ban', target: ban.key, details: { until: ban.until, strikes: ban.strikes, reason: ban.reason } });
        deps.log.warn({ key: ban.key, until: new Date(ban.until).toISOString(), strikes: ban.strikes }, 'login regulation ban');
      }
    });
    return { kind: 'failed', reason: reason ?? 'unknown' };
  }
  deps.regulator.succeed(a.ip, username);
  return { kind: 'ok', user };
}
