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
  /** Only entries with a smaller id (keyset paging for exports). */
  beforeId?: number;
}

export function listAudit(q: Queryable, f: AuditFilter = {}): Promise<AuditRow[]> {
  return q.all<AuditRow>(
    `SELECT * FROM audit_log
     WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2 OR substr(action, 1, length(?2) + 1) = ?2 || '.') AND (?3 IS NULL OR target = ?3)
       AND (?4 IS NULL OR ts >= ?4) AND (?5 IS NULL OR ts <= ?5) AND (?8 IS NULL OR id < ?8)
     ORDER BY id DESC LIMIT ?6 OFFSET ?7`,
    [
      f.actor || null,
      f.action?.replace(/\.+$/, '') || null,
      f.target || null,
      f.since ?? null,
      f.until ?? null,
      Math.min(f.limit ?? 100, 10_000),
      f.offset ?? 0,
      f.beforeId ?? null,
    ],
  );
}

/** Every entry matching a filter, newest first, fetched in pages (exports; no 10,000-row cap). */
export async function* iterateAudit(q: Queryable, f: Omit<AuditFilter, 'limit' | 'offset' | 'beforeId'> = {}, pageSize = 2000): AsyncGenerator<AuditRow> {
  let beforeId: number | undefined;
  for (;;) {
    const rows = await listAudit(q, { ...f, limit: pageSize, beforeId });
    for (const r of rows) yield r;
    if (rows.length < pageSize) return;
    beforeId = rows.at(-1)!.id;
  }
}

/** The action of an anchor entry written by pruning: its details record the hash of the last pruned entry. */
export const PRUNE_ACTION = 'audit.prune';

export interface ChainReport {
  ok: boolean;
  checked: number;
  brokenAt: number | null;
  /** Why the chain is broken (null when ok). */
  reason: string | null;
  /** The pruning anchor the chain starts from, if it does not start at the beginning. */
  anchoredAt: number | null;
}

/**
 * Walks the whole chain in id order. The first entry must link to the genesis hash, or to the pruned head
 * recorded by the latest pruning anchor (itself an entry in the verified chain); every entry must link to the
 * previous one and hash to its stored value.
 */
export async function checkAuditChain(q: Queryable, pageSize = 5000): Promise<ChainReport> {
  let prev: string | null = null;
  let checked = 0;
  let lastId = 0;
  let anchoredAt: number | null = null;
  for (;;) {
    const rows = await q.all<AuditRow>('SELECT * FROM audit_log WHERE id > ? ORDER BY id ASC LIMIT ?', [lastId, pageSize]);
    for (const r of rows) {
      if (prev === null) {
        if (r.prev_hash !== GENESIS_HASH) {
          const anchor = await q.get<{ id: number; details: string }>('SELECT id, details FROM audit_log WHERE action = ? ORDER BY id DESC LIMIT 1', [PRUNE_ACTION]);
          let recorded: unknown;
          try {
            recorded = anchor ? (JSON.parse(anchor.details) as { anchor?: unknown }).anchor : null;
          } catch {
            recorded = null;
          }
          if (recorded !== r.prev_hash) {
            return { ok: false, checked: checked + 1, brokenAt: r.id, reason: 'the chain does not start at its beginning nor at a recorded pruning anchor (entries were removed)', anchoredAt: null };
          }
          anchoredAt = anchor!.id;
        }
        prev = r.prev_hash;
      }
      checked++;
      const expect = entryHash(prev, { ts: r.ts, actor: r.actor, action: r.action, target: r.target, ip: r.ip, userAgent: r.user_agent, details: r.details });
      if (r.prev_hash !== prev) return { ok: false, checked, brokenAt: r.id, reason: 'this entry does not link to the previous one (an entry was removed or reordered)', anchoredAt };
      if (r.hash !== expect) return { ok: false, checked, brokenAt: r.id, reason: 'this entry was changed after it was written (its hash does not match its content)', anchoredAt };
      prev = r.hash;
      lastId = r.id;
    }
    if (rows.length < pageSize) break;
  }
  return { ok: true, checked, brokenAt: null, reason: null, anchoredAt };
}

/** Walks the chain; returns the id of the first entry whose link or content does not verify, or null. `checked`: entries in the log. */
export async function verifyAuditChain(q: Queryable): Promise<{ ok: boolean; checked: number; brokenAt: number | null }> {
  const r = await checkAuditChain(q);
  const total = r.ok ? r.checked : ((await q.get<{ n: number }>('SELECT count(*) AS n FROM audit_log'))?.n ?? 0);
  return { ok: r.ok, checked: total, brokenAt: r.brokenAt };
}

/**
 * Retention: deletes the oldest entries (a prefix of the chain, by id) whose time is before `cutoffTs`, in one
 * transaction that first appends an anchor entry (`audit.prune`) recording the hash of the last pruned entry
 * and how many were removed, so the remaining chain still verifies. Returns how many entries were deleted.
 */
export async function pruneAudit(db: Database, cutoffTs: number, actor: Actor = SYSTEM_ACTOR, now = Date.now()): Promise<number> {
  return db.write(async (tx) => {
    const firstKept = await tx.get<{ id: number | null }>('SELECT min(id) AS id FROM audit_log WHERE ts >= ?', [cutoffTs]);
    const bound = firstKept?.id ?? Number.MAX_SAFE_INTEGER;
    const last = await tx.get<{ id: number; hash: string }>('SELECT id, hash FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT 1', [bound]);
    if (!last) return 0;
    const n = (await tx.get<{ n: number }>('SELECT count(*) AS n FROM audit_log WHERE id <= ?', [last.id]))?.n ?? 0;
    await appendAudit(tx, actor, { action: PRUNE_ACTION, target: 'audit_log', details: { anchor: last.hash, pruned: n, through_id: last.id, cutoff_ts: cutoffTs } }, now);
    await tx.run('DELETE FROM audit_log WHERE id <= ?', [last.id]);
    return n;
  });
}

/** One CSV cell: always quoted, quotes doubled, and a leading = + - @ (or tab/CR) neutralised with a quote so spreadsheets never run it as a formula. */
export function csvCell(v: unknown): string {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return `"${s.replace(/"/g, '""')}"`;
}

export const AUDIT_CSV_HEADER = ['id', 'time', 'actor', 'action', 'target', 'ip', 'user_agent', 'details', 'hash'];

/** One audit entry as a CSV line (CRLF-terminated, RFC 4180). */
export function auditCsvLine(r: AuditRow): string {
  return [r.id, new Date(r.ts).toISOString(), r.actor, r.action, r.target, r.ip, r.user_agent, r.details, r.hash].map(csvCell).join(',') + '\r\n';
}
