/** Notification delivery history (one row per message and channel: sent, failed with the error, throttled, dropped). */
import type { Queryable, Tx } from '../db/sqlite.ts';

export type DeliveryOutcome = 'sent' | 'failed' | 'throttled' | 'dropped';

export interface Delivery {
  ts: number;
  channel: string;
  event: string;
  outcome: DeliveryOutcome;
  subject: string;
  events: number;
  attempts: number;
  error: string | null;
}

export interface DeliveryRow extends Delivery {
  id: number;
}

export async function insertDelivery(tx: Tx, d: Delivery): Promise<void> {
  await tx.run('INSERT INTO notification_log (ts, channel, event, outcome, subject, events, attempts, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
    d.ts,
    d.channel,
    d.event,
    d.outcome,
    d.subject.slice(0, 300),
    d.events,
    d.attempts,
    d.error?.slice(0, 1000) ?? null,
  ]);
}

/** Newest first. */
export function listDeliveries(q: Queryable, f: { channel?: string; outcome?: string; limit?: number; offset?: number } = {}): Promise<DeliveryRow[]> {
  return q.all<DeliveryRow>(
    `SELECT * FROM notification_log WHERE (?1 IS NULL OR channel = ?1) AND (?2 IS NULL OR outcome = ?2)
     ORDER BY id DESC LIMIT ?3 OFFSET ?4`,
    [f.channel || null, f.outcome || null, Math.min(f.limit ?? 50, 500), f.offset ?? 0],
  );
}

/** When a channel last delivered a message, and when it last failed. */
export async function channelHealth(q: Queryable, channel: string): Promise<{ lastSuccess: number | null; lastFailure: number | null; lastError: string | null }> {
  const ok = await q.get<{ ts: number }>("SELECT ts FROM notification_log WHERE channel = ? AND outcome = 'sent' ORDER BY id DESC LIMIT 1", [channel]);
  const bad = await q.get<{ ts: number; error: string | null }>("SELECT ts, error FROM notification_log WHERE channel = ? AND outcome = 'failed' ORDER BY id DESC LIMIT 1", [channel]);
  return { lastSuccess: ok?.ts ?? null, lastFailure: bad?.ts ?? null, lastError: bad?.error ?? null };
}
