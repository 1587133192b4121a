/**
 * The decision log: a bounded, non-blocking queue flushed in batches through the writer queue.
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

export class DecisionLog {
  private queue: DecisionEntry[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing = false;
  dropped = 0;
  written = 0;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly opts = { maxQueue: 20_000, batch: 1000, intervalMs: 500 },
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
        await this.db.write(async (tx) => {
          for (const e of batch) {
            await tx.run(
              'INSERT INTO decision_log (ts, request_id, host, method, path, ip, country, user, verdict, reason, status, latency_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
              [e.ts, e.requestId, e.host, e.method, e.path.slice(0, 2048), e.ip, e.country, e.user, e.verdict, e.reason, e.status, e.latencyUs],
            );
          }
        });
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
