/** API tokens: `argos_<random>` shown once; only the SHA-256 is stored. Mutations require an AuditedTx. */
import type { Queryable, Tx } from '../db/sqlite.ts';
import type { AuditedTx } from '../audit.ts';
import { hashToken, randomToken } from '../crypto.ts';

export interface ApiToken {
  id: number;
  userId: number;
  name: string;
  tokenHash: string;
  hosts: string[];
  adminScope: boolean;
  expiresAt: number | null;
  lastUsedAt: number | null;
  createdAt: number;
  revokedAt: number | null;
  /** Factors of the sign-in that created it (operator/CLI tokens: 2). */
  factors: number;
  origin: TokenOrigin;
}

export type TokenOrigin = 'operator' | 'portal' | 'sso';

interface Row {
  id: number;
  user_id: number;
  name: string;
  token_hash: string;
  hosts: string;
  admin_scope: number;
  expires_at: number | null;
  last_used_at: number | null;
  created_at: number;
  revoked_at: number | null;
  factors: number;
  origin: TokenOrigin;
}

const toToken = (r: Row): ApiToken => ({
  id: r.id,
  userId: r.user_id,
  name: r.name,
  tokenHash: r.token_hash,
  hosts: JSON.parse(r.hosts),
  adminScope: !!r.admin_scope,
  expiresAt: r.expires_at,
  lastUsedAt: r.last_used_at,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
  factors: r.factors,
  origin: r.origin,
});

export const TOKEN_PREFIX = 'argos_';
export const TOKEN_RE = /^argos_[A-Za-z0-9_-]{43}$/;

export async function createApiToken(
  tx: AuditedTx,
  t: { userId: number; name: string; hosts: string[]; adminScope: boolean; expiresAt: number | null; factors?: number; origin?: TokenOrigin },
  now = Date.now(),
): Promise<{ id: number; token: string }> {
  const token = TOKEN_PREFIX + randomToken(32);
  const r = await tx.run('INSERT INTO api_tokens (user_id, name, token_hash, hosts, admin_scope, expires_at, created_at, factors, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
    t.userId,
    t.name,
    hashToken(token),
    JSON.stringify(t.hosts),
    t.adminScope ? 1 : 0,
    t.expiresAt,
    now,
    t.factors ?? 2,
    t.origin ?? 'operator',
  ]);
  return { id: r.lastID, token };
}

/** Live tokens (not revoked, not expired): the gatekeeper keeps them in memory, keyed by hash. */
export async function listLiveTokens(q: Queryable, now = Date.now()): Promise<ApiToken[]> {
  return (await q.all<Row>('SELECT * FROM api_tokens WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)', [now])).map(toToken);
}

export async function listUserTokens(q: Queryable, userId: number): Promise<ApiToken[]> {
  return (await q.all<Row>('SELECT * FROM api_tokens WHERE user_id = ? ORDER BY created_at DESC', [userId])).map(toToken);
}

export async function getTokenByHash(q: Queryable, tokenHash: string): Promise<ApiToken | null> {
  const r = await q.get<Row>('SELECT * FROM api_tokens WHERE token_hash = ?', [tokenHash]);
  return r ? toToken(r) : null;
}

export async function getToken(q: Queryable, id: number): Promise<ApiToken | null> {
  const r = await q.get<Row>('SELECT * FROM api_tokens WHERE id = ?', [id]);
  return r ? toToken(r) : null;
}

export async function revokeApiToken(tx: AuditedTx, id: number, now = Date.now()): Promise<boolean> {
  return (await tx.run('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id])).changes > 0;
}

/** Revokes every admin-scope (panel API) token of a user; returns how many. */
export async function revokeAdminTokens(tx: AuditedTx, userId: number, now = Date.now()): Promise<number> {
  return (await tx.run('UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND admin_scope = 1 AND revoked_at IS NULL', [now, userId])).changes;
}

/** Last-used bookkeeping (throttled by the caller); not an operator mutation and not a config change. */
export async function touchToken(tx: Tx, id: number, now = Date.now()): Promise<void> {
  await tx.run('UPDATE api_tokens SET last_used_at = ? WHERE id = ?', [now, id]);
}
