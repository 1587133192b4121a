/** The decision log (written in batches by the gatekeeper): filtered listing and retention. */
import type { Queryable, Tx } from '../db/sqlite.ts';

export interface DecisionRow {
  id: number;
  ts: number;
  request_id: string;
  host: string;
  method: string;
  path: string;
  ip: string;
  country: string | null;
  user: string | null;
  verdict: string;
  reason: string;
  status: number;
  latency_us: number;
}

export interface DecisionFilter {
  host?: string;
  verdict?: string;
  reason?: string;
  ip?: string;
  user?: string;
  limit?: number;
  offset?: number;
}

/** Newest first; every filter optional and exact. */
export function listDecisions(q: Queryable, f: DecisionFilter = {}): Promise<DecisionRow[]> {
  return q.all<DecisionRow>(
    `SELECT * FROM decision_log
     WHERE (?1 IS NULL OR host = ?1) AND (?2 IS NULL OR verdict = ?2) AND (?3 IS NULL OR reason = ?3) AND (?4 IS NULL OR ip = ?4) AND (?5 IS NULL OR user = ?5)
     ORDER BY id DESC LIMIT ?6 OFFSET ?7`,
    [f.host || null, f.verdict || null, f.reason || null, f.ip || null, f.user || null, Math.min(f.limit ?? 100, 1000), f.offset ?? 0],
  );
}

/** Deletes entries older than `retentionS`; returns how many. */
export async function pruneDecisions(tx: Tx, retentionS: number, now = Date.now()): Promise<number> {
  return (await tx.run('DELETE FROM decision_log WHERE ts < ?', [now - retentionS * 1000])).changes;
}
