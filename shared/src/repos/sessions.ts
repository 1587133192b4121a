/**
 * Server-side sessions. The cookie carries a random token; only its SHA-256 is stored.
 * Creating a session or touching last-seen is not an operator mutation (the login itself is audited);
 * revocation is, so it requires an AuditedTx.
 */
import type { Queryable, Tx } from '../db/sqlite.ts';
import type { AuditedTx } from '../audit.ts';
import { hashToken, randomToken } from '../crypto.ts';

export type SessionKind = 'portal' | 'panel';

export interface Session {
  id: number;
  kind: SessionKind;
  userId: number;
  factors: number;
  authMethod: string;
  remember: boolean;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  idleTimeoutS: number;
  ip: string | null;
  userAgent: string | null;
  country: string | null;
  csrfSecret: string | null;
  reauthAt: number | null;
  revokedAt: number | null;
}

interface SessionRow {
  id: number;
  kind: SessionKind;
  user_id: number;
  factors: number;
  auth_method: string;
  remember: number;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  idle_timeout_s: number;
  ip: string | null;
  user_agent: string | null;
  country: string | null;
  csrf_secret: string | null;
  reauth_at: number | null;
  revoked_at: number | null;
}

const toSession = (r: SessionRow): Session => ({
  id: r.id,
  kind: r.kind,
  userId: r.user_id,
  factors: r.factors,
  authMethod: r.auth_method,
  remember: !!r.remember,
  createdAt: r.created_at,
  lastSeenAt: r.last_seen_at,
  expiresAt: r.expires_at,
  idleTimeoutS: r.idle_timeout_s,
  ip: r.ip,
  userAgent: r.user_agent,
  country: r.country,
  csrfSecret: r.csrf_secret,
  reauthAt: r.reauth_at,
  revokedAt: r.revoked_at,
});

export interface NewSession {
  kind: SessionKind;
  userId: number;
  factors: number;
  authMethod: string;
  remember: boolean;
  lifetimeS: number;
  idleTimeoutS: number;
  ip: string | null;
  userAgent: string | null;
  country?: string | null;
}

/** Creates a session and returns the cookie token (shown once; the database keeps its hash). */
export async function createSession(tx: Tx, s: NewSession, now = Date.now()): Promise<{ token: string; id: number; csrfSecret: string }> {
  const token = randomToken(32);
  const csrfSecret = randomToken(24);
  const id = await insertSessionWithToken(tx, token, s, now, csrfSecret);
  return { token, id, csrfSecret };
}

/** Inserts a session for a token the caller generated (randomToken(32)); returns the row id. */
export async function insertSessionWithToken(tx: Tx, token: string, s: NewSession, now = Date.now(), csrfSecret = randomToken(24)): Promise<number> {
  const r = await tx.run(
    `INSERT INTO sessions (token_hash, kind, user_id, factors, auth_method, remember, created_at, last_seen_at, expires_at, idle_timeout_s,
       ip, user_agent, country, csrf_secret, reauth_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      hashToken(token),
      s.kind,
      s.userId,
      s.factors,
      s.authMethod,
      s.remember ? 1 : 0,
      now,
      now,
      now + s.lifetimeS * 1000,
      s.idleTimeoutS,
      s.ip,
      s.userAgent?.slice(0, 300) ?? null,
      s.country ?? null,
      csrfSecret,
      now,
    ],
  );
  return r.lastID;
}

export async function getSessionByToken(q: Queryable, token: string): Promise<Session | null> {
  const row = await q.get<SessionRow>('SELECT * FROM sessions WHERE token_hash = ?', [hashToken(token)]);
  return row ? toSession(row) : null;
}

export async function getSessionByHash(q: Queryable, tokenHash: string): Promise<Session | null> {
  const row = await q.get<SessionRow>('SELECT * FROM sessions WHERE token_hash = ?', [tokenHash]);
  return row ? toSession(row) : null;
}

export async function listUserSessions(q: Queryable, userId: number, now = Date.now()): Promise<Session[]> {
  const rows = await q.all<SessionRow>(
    'SELECT * FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY last_seen_at DESC',
    [userId, now],
  );
  return rows.map(toSession);
}

/** Usable sessions per kind: not revoked, within their absolute lifetime and their idle timeout. */
export async function countActiveSessions(q: Queryable, now = Date.now()): Promise<Record<SessionKind, number>> {
  const rows = await q.all<{ kind: SessionKind; n: number }>(
    'SELECT kind, count(*) AS n FROM sessions WHERE revoked_at IS NULL AND expires_at > ? AND last_seen_at > ? - idle_timeout_s * 1000 GROUP BY kind',
    [now, now],
  );
  const out: Record<SessionKind, number> = { portal: 0, panel: 0 };
  for (const r of rows) out[r.kind] = r.n;
  return out;
}

/** Whether a session is usable at `now`: not revoked, within its absolute lifetime and its idle timeout. */
export function sessionAlive(s: Session, now: number): boolean {
  return s.revokedAt === null && now < s.expiresAt && now - s.lastSeenAt < s.idleTimeoutS * 1000;
}

/** Records a fresh re-authentication (password, plus TOTP when enrolled) on a session. */
export async function markReauth(tx: Tx, id: number, now = Date.now()): Promise<void> {
  await tx.run('UPDATE sessions SET reauth_at = ? WHERE id = ?', [now, id]);
}

export async function touchSession(tx: Tx, id: number, now = Date.now()): Promise<void> {
  await tx.run('UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?', [now, id, now]);
}

export async function revokeSession(tx: AuditedTx | Tx, id: number, now = Date.now()): Promise<boolean> {
  return (await tx.run('UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id])).changes > 0;
}

export async function revokeUserSessions(tx: AuditedTx, userId: number, now = Date.now(), kind?: SessionKind): Promise<number> {
  const r = await tx.run('UPDATE sessions SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL AND (?3 IS NULL OR kind = ?3)', [now, userId, kind ?? null]);
  return r.changes;
}

/** Deletes sessions that ended more than a day ago (housekeeping). */
export async function pruneSessions(tx: Tx, now = Date.now()): Promise<number> {
  const cutoff = now - 86_400_000;
  return (await tx.run('DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?', [cutoff, cutoff])).changes;
}
