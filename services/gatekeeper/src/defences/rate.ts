/**
 * Rate buckets: one token bucket per (host, client), the client being the IPv4 address or the IPv6 /64.
 *
 * A bucket holds `burst` tokens and refills at `limit / window`. It is stored as a single number, the time at
 * which the bucket will be full again (the "theoretical arrival time" of GCRA, which is exactly a token bucket):
 * tokens(now) = burst − max(0, fullAt − now) / interval. Taking a token moves fullAt one interval later; a
 * request that would push it beyond `burst` intervals ahead is refused, and Retry-After is the time until one
 * token is back (rounded up to whole seconds).
 *
 * Buckets live in a bounded LRU: memory stays flat whatever number of addresses an attacker uses, and evicting a
 * bucket only forgets it (a fresh bucket is full), so eviction can forgive a client but never block one.
 */
import { LRUCache } from 'lru-cache';
import { clientKey } from '@argos/shared/net';
import { parseRateLimit, type SettingsMap } from '@argos/shared/settings';
import type { Host } from '@argos/shared/repos/hosts';

export interface RateLimit {
  /** Requests per window. */
  limit: number;
  windowS: number;
  /** Requests allowed at once (bucket size). */
  burst: number;
}

export type RateResult = { ok: true } | { ok: false; retryAfterS: number };

export const DEFAULT_MAX_BUCKETS = 200_000;

export function describeLimit(l: RateLimit): string {
  const unit = l.windowS === 1 ? 's' : l.windowS === 60 ? 'min' : l.windowS === 3600 ? 'h' : `${l.windowS}s`;
  return `${l.limit}/${unit}, burst ${l.burst}`;
}

const parsedDefaults = new Map<string, { limit: number; windowS: number } | null>();

/** The limit for a host: its own (burst defaults to the limit), else the global default; null = unlimited. */
export function limitFor(host: Host | null, settings: Pick<SettingsMap, 'rate.default_limit' | 'rate.default_burst'> | undefined): RateLimit | null {
  if (host?.rateLimit && host.rateWindowS) return { limit: host.rateLimit, windowS: host.rateWindowS, burst: host.rateBurst ?? host.rateLimit };
  if (!settings) return null;
  const text = settings['rate.default_limit'];
  let r = parsedDefaults.get(text);
  if (r === undefined) {
    r = text && text !== 'off' ? parseRateLimit(text) : null;
    if (parsedDefaults.size > 100) parsedDefaults.clear();
    parsedDefaults.set(text, r);
  }
  if (!r) return null;
  return { ...r, burst: Math.max(1, settings['rate.default_burst'] ?? r.limit) };
}

/** The bucket namespace of a host: its domain, or `*` for requests to hosts Argos does not know. */
export const hostKeyOf = (host: Host | null): string => host?.domain ?? '*';

export class RateBuckets {
  /** key → time (ms) at which the bucket is full again. */
  private readonly buckets: LRUCache<string, number>;
  private readonly now: () => number;

  constructor(opts: { max?: number; now?: () => number } = {}) {
    this.buckets = new LRUCache({ max: opts.max ?? DEFAULT_MAX_BUCKETS });
    this.now = opts.now ?? Date.now;
  }

  /** Takes one token from the client's bucket. */
  take(hostKey: string, ip: string, l: RateLimit): RateResult {
    return this.step(hostKey, ip, l, true);
  }

  /** Answers what `take` would, without taking anything (dry runs: `argos check`, Test access). */
  peek(hostKey: string, ip: string, l: RateLimit): RateResult {
    return this.step(hostKey, ip, l, false);
  }

  private step(hostKey: string, ip: string, l: RateLimit, consume: boolean): RateResult {
    const key = `${hostKey} ${clientKey(ip)}`;
    const now = this.now();
    const interval = (l.windowS * 1000) / l.limit;
    const tolerance = l.burst * interval;
    let fullAt = Math.max(this.buckets.get(key) ?? now, now);
    if (fullAt > now + tolerance) {
      // Emptier than empty: the limit was raised since this was stored. Judge the client by the new limit.
      fullAt = now + tolerance;
      if (consume) this.buckets.set(key, fullAt);
    }
    const next = fullAt + interval;
    if (next - now > tolerance + 1e-6) {
      const waitMs = next - tolerance - now;
      return { ok: false, retryAfterS: Math.max(1, Math.ceil(waitMs / 1000 - 1e-9)) };
    }
    if (consume) this.buckets.set(key, next);
    return { ok: true };
  }

  get size(): number {
    return this.buckets.size;
  }

  get max(): number {
    return this.buckets.max;
  }

  clear(): void {
    this.buckets.clear();
  }
}
