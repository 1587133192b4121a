/**
 * The audit recorder. Every mutation runs through `mutate()`: it opens the write transaction,
 * hands the command an `AuditedTx` (the only type that repository mutation functions accept),
 * and appends one hash-chained audit entry in the same transaction. A write path cannot skip it.
 */
import { createHash } from 'node:crypto';
import type { Database, Queryable, Tx } from './db/sqlite.ts';

/** Who did it, and from where. `name` is `cli`, `system`, `admin:<user>`, `user:<user>` or `anonymous`. */
export interface Actor {
  name: string;
  ip?: string | null;
  userAgent?: string | null;
}

export const CLI_ACTOR: Actor = { name: 'cli' };
export const SYSTEM_ACTOR: Actor = { name: 'system' };

declare const audited: unique symbol;
/** A write transaction inside `mutate()`. Repository create/update/delete functions require it. */
export type AuditedTx = Tx & { readonly [audited]: true };

export interface AuditEntry {
  action: string;
  target?: string;
  before?: unknown;
  after?: unknown;
  details?: Record<string, unknown>;
}

const SECRET_KEY = /pass|secret|token|seed|otp|recovery|key|hash|code|cookie|authorization/i;

/** Deep-copies a value with every secret-looking field replaced by "[redacted]". */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) ? (v === null || v === undefined ? v : '[redacted]') : redact(v, depth + 1);
  }
  return out;
}

export const GENESIS_HASH = '0'.repeat(64);

export function entryHash(prev: string, e: { ts: number; actor: string; action: string; target: string; ip: string | null; userAgent: string | null; details: string }): string {
  return createHash('sha256')
    .update(prev)
    .update(JSON.stringify([e.ts, e.actor, e.action, e.target, e.ip, e.userAgent, e.details]))
    .digest('hex');
}

/** Appends one entry to the chain inside an open write transaction. */
export async function appendAudit(tx: Tx, actor: Actor, entry: AuditEntry, now = Date.now()): Promise<void> {
  const last = await tx.get<{ hash: string }>('SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1');
  const prev = last?.hash ?? GENESIS_HASH;
  const details = JSON.stringify(redact({ ...(entry.details ?? {}), before: entry.before, after: entry.after }));
  const row = {
    ts: now,
    actor: actor.name,
    action: entry.action,
    target: entry.target ?? '',
    ip: actor.ip ?? null,
    userAgent: actor.userAgent?.slice(0, 300) ?? null,
    details,
  };
  await tx.run(
    'INSERT INTO audit_log (ts, actor, action, target, ip, user_agent, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    [row.ts, row.actor, row.action, row.target, row.ip, row.userAgent, row.details, prev, entryHash(prev, row)],
  );
}

/**
 * Runs one audited mutation: `fn` does the writes and returns the result plus what to record.
 * The audit entry and the change commit or roll back together.
 */
export function mutate<T>(db: Database, actor: Actor, fn: (tx: AuditedTx) => Promise<{ result: T; audit: AuditEntry }>): Promise<T> {
  return db.write(async (tx) => {
    const { result, audit } = await fn(tx as AuditedTx);
    await appendAudit(tx, actor, audit);
    return result;
  });
}

/** Records an event that changes nothing else (login success/failure, token use) as its own transaction. */
export function recordEvent(db: Database, actor: Actor, entry: AuditEntry): Promise<void> {
  return db.write((tx) => appendAudit(tx, actor, entry));
}

export interface AuditRow {
  id: number;
  ts: number;
  actor: string;
  action: string;
  target: string;
  ip: string | null;
  user_agent: string | null;
  details: string;
  prev_hash: string;
  hash: string;
}

export interface AuditFilter {
  actor?: string;
  action?: string;
  target?: string;
  since?: number;
  until?: number;
  limit?: number;
  offset?: number;
}

export function listAudit(q: Queryable, f: AuditFilter = {}): Promise<AuditRow[]> {
  return q.all<AuditRow>(
    `SELECT * FROM audit_log
     WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2 OR action LIKE ?2 || '.%') AND (?3 IS NULL OR target = ?3)
       AND (?4 IS NULL OR ts >= ?4) AND (?5 IS NULL OR ts <= ?5)
     ORDER BY id DESC LIMIT ?6 OFFSET ?7`,
    [f.actor || null, f.action?.replace(/[%_]/g, '') || null, f.target || null, f.since ?? null, f.until ?? null, Math.min(f.limit ?? 100, 10_000), f.offset ?? 0],
  );
}

/** Walks the chain; returns the id of the first entry whose link or content does not verify, or null. */
export async function verifyAuditChain(q: Queryable): Promise<{ ok: boolean; checked: number; brokenAt: number | null }> {
  const rows = await q.all<AuditRow>('SELECT * FROM audit_log ORDER BY id ASC');
  let prev = rows[0]?.prev_hash ?? GENESIS_HASH;
  for (const r of rows) {
    const expect = entryHash(prev, { ts: r.ts, actor: r.actor, action: r.action, target: r.target, ip: r.ip, userAgent: r.user_agent, details: r.details });
    if (r.prev_hash !== prev || r.hash !== expect) return { ok: false, checked: rows.length, brokenAt: r.id };
    prev = r.hash;
  }
  return { ok: true, checked: rows.length, brokenAt: null };
}
