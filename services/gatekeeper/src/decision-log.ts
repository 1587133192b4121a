/**
 * The decision log: a bounded, non-blocking queue flushed in batches through the writer queue, every 500 ms or as
 * soon as 500 entries wait.
 * /verify only pushes; when the queue is full the entry is dropped and counted, never awaited.
 */
import type { Database } from '@argos/shared/db/sqlite';
import type { Logger } from '@argos/shared/log';

export interface DecisionEntry {
  ts: number;
  requestId: string;
  host: string;
  method: string;
  path: string;
  ip: string;
  country: string | null;
  user: string | null;
  verdict: string;
  reason: string;
  status: number;
  latencyUs: number;
}

/**
 * One statement per batch: the rows travel as one JSON array parameter and SQLite unpacks them (json_each), in order.
 * A statement per row would cost one driver round trip through the event loop per row, and under load the
 * transaction would then hold the database's write lock across thousands of busy event-loop turns, starving
 * the panel's writes (SQLITE_BUSY after busy_timeout) and spending the gatekeeper's CPU on callbacks. The statement
 * runs on its own (no BEGIN … COMMIT around it), so the lock is held only while SQLite inserts the batch.
 */
const INSERT_BATCH = `INSERT INTO decision_log (ts, request_id, host, method, path, ip, country, user, verdict, reason, status, latency_us)
  SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11
  FROM json_each(?)`;

export class DecisionLog {
  private queue: DecisionEntry[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing = false;
  dropped = 0;
  written = 0;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly opts = { maxQueue: 20_000, batch: 500, intervalMs: 500, flushAt: 500 },
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.opts.intervalMs);
    this.timer.unref();
  }

  push(e: DecisionEntry): void {
    if (this.queue.length >= this.opts.maxQueue) {
      this.dropped++;
      return;
    }
    this.queue.push(e);
    // Under load, write as soon as a batch is ready instead of waiting for the timer: entries then die young (a
    // 500 ms wait at thousands of requests/s got them promoted to V8's old generation, growing the heap between
    // major collections) and each write transaction stays short.
    if (this.queue.length === this.opts.flushAt) void this.flush();
  }

  get depth(): number {
    return this.queue.length;
  }

  async flush(): Promise<void> {
    if (this.flushing || this.queue.length === 0) return;
    this.flushing = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.opts.batch);
        const rows = JSON.stringify(batch.map((e) => [e.ts, e.requestId, e.host, e.method, e.path.slice(0, 2048), e.ip, e.country, e.user, e.verdict, e.reason, e.status, e.latencyUs]));
        await this.db.writeStatement(INSERT_BATCH, [rows]);
        this.written += batch.length;
      }
    } catch (err) {
      this.log.error({ err }, 'decision log flush failed');
    } finally {
      this.flushing = false;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}
