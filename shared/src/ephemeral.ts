/**
 * Short-lived, single-use server-side records (pending 2FA challenges, cookie-domain handoffs, pending
 * enrollments): bounded in number (oldest evicted first), expired by TTL, and swept periodically so
 * memory stays flat whatever an attacker sends.
 */
import { LRUCache } from 'lru-cache';
import { randomToken } from './crypto.ts';

export class EphemeralStore<T extends object> {
  private readonly cache: LRUCache<string, T>;

  constructor(opts: { max: number; ttlMs: number; now?: () => number }) {
    this.cache = new LRUCache<string, T>({ max: opts.max, ttl: opts.ttlMs, ttlAutopurge: true, ...(opts.now ? { perf: { now: opts.now } } : {}) });
  }

  /** Stores a record under a fresh random id and returns the id. */
  put(value: T): string {
    const id = randomToken(24);
    this.cache.set(id, value);
    return id;
  }

  /** Reads without consuming. */
  peek(id: string | null | undefined): T | undefined {
    return id ? this.cache.get(id) : undefined;
  }

  /** Consumes: the record is gone before the caller does anything with it (single use). */
  take(id: string | null | undefined): T | undefined {
    if (!id) return undefined;
    const v = this.cache.get(id);
    if (v !== undefined) this.cache.delete(id);
    return v;
  }

  delete(id: string): void {
    this.cache.delete(id);
  }

  get size(): number {
    return this.cache.size;
  }
}
