/** Persisted login-regulation bans (attempt counters stay in memory). Not operator mutations: the ban event is audited. */
import type { Queryable, Tx } from '../db/sqlite.ts';
import type { Ban } from '../regulation.ts';

export async function saveBan(tx: Tx, b: Ban, now = Date.now()): Promise<void> {
  await tx.run(
    'INSERT INTO bans (key, until, strikes, reason, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET until = excluded.until, strikes = excluded.strikes, reason = excluded.reason',
    [b.key, b.until, b.strikes, b.reason, now],
  );
}

export function listActiveBans(q: Queryable, now = Date.now()): Promise<Ban[]> {
  return q.all<Ban>('SELECT key, until, strikes, reason FROM bans WHERE until > ? ORDER BY until DESC', [now]);
}

export async function deleteBan(tx: Tx, key: string): Promise<boolean> {
  return (await tx.run('DELETE FROM bans WHERE key = ?', [key])).changes > 0;
}
