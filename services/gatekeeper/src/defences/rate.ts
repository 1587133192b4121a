/**
 * Rate buckets: one token bucket per (host, client), the client being the IPv4 address or the IPv6 /64.
 *
 * A bucket holds `burst` tokens and refills at `limit / window`. It is stored as a single number, the time at
 * which the bucket will be full again (the "theoretical arrival time" of GCRA, which is exactly a token bucket):
 * tokens(now) = burst − max(0, fullAt − now) / interval. Taking a token moves fullAt one interval later; a
 * request that would push it beyond `burst` intervals ahead is refused, and Retry-After is the time until one
 * token is back (rounded up to whole seconds).
 *
 * A bucket whose fullAt is not after now is exactly a fresh (absent) bucket, so only buckets "in debt" carry
 * information, and only for a short while (a client that sent one request at 20/s: 50 ms). The buckets therefore
 * live in a fixed table allocated up front (5 MiB of typed arrays by default) and no object or string is kept per
 * client, so memory is the same with ten clients or ten million addresses:
 *
 * - Set-associative: `sets × 8` slots; a bucket can only live in the 8 slots ("ways") of the set its key hashes
 *   to. A slot is the bucket's fullAt (Float64Array) and its exact key (three words of an Int32Array): the host's
 *   number in this table with the family (IPv4, IPv6 /64, other), and the client's 64 bits. Keys are compared in
 *   full, so two clients never share a bucket; a hash collision only makes them compete for the slots of a set.
 *   (8 ways rather than 4: with half the slots in debt, 0.9% instead of 3.7% of them are forgotten, same memory.)
 * - The set comes from simple tabulation hashing over the key's 12 bytes, with random tables drawn when the table
 *   is made (a universal family: for any two distinct keys the chance of the same set is 1/sets, whatever the
 *   keys), so an attacker cannot choose addresses that land in a victim's set.
 * - A new bucket takes the slot of its set with the smallest fullAt: a free or expired slot first (that loses
 *   nothing), else the bucket closest to full (that forgives the fewest tokens). A rate-limited client in debt is
 *   therefore not forgotten when a flood of one-shot addresses passes through its set: their buckets expire or are
 *   shallower than its own and replace one another. Only 8 buckets deeper in debt in the same set push it out.
 *
 * Evicting a bucket only forgets it (a fresh bucket is full), so eviction can forgive a client but never block
 * one. `size` counts the buckets in debt now; `max` is the number of slots.
 */
import { randomFillSync } from 'node:crypto';
import { isIP } from 'node:net';
import { ipToBytes } from '@argos/shared/net';
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

/** Slots by default: 262,144 (2^15 sets of 8 ways), 20 bytes each: 5 MiB. */
export const DEFAULT_MAX_BUCKETS = 262_144;

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

/** Slots per set. */
const WAYS = 8;
/** Host keys get numbers below this; seeing more clears the table (forgets every bucket: forgives, never blocks). */
const MAX_HOSTS = 1 << 16;
/** Clients that are not IP addresses (never from /verify, which normalises addresses) get numbers too, this many. */
const MAX_OTHERS = 4096;

/** Families of client keys (the low two bits of a slot's first key word). */
const FAM_V4 = 0;
const FAM_V6 = 1;
const FAM_OTHER = 2;
/** First key word of a free slot: never a real key (real ones are host number × 4 + family, host < 2^16). */
const EMPTY = -1;

const OK: RateResult = Object.freeze({ ok: true });

// parseClient's result, without allocating: the client's 64 bits (IPv4: the address in cHi, cLo = 0).
let cHi = 0;
let cLo = 0;
const groups = new Int32Array(8);

/** Canonical dotted-quad IPv4 (what normalizeIp returns: decimal, no leading zeros) into cHi. */
function parseIpv4(ip: string): boolean {
  const n = ip.length;
  if (n < 7 || n > 15) return false;
  let v = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = ip.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return false; // leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return false;
    } else if (c === 46) {
      if (digits === 0 || ++dots > 3) return false;
      v = (v << 8) | octet;
      octet = 0;
      digits = 0;
    } else return false;
  }
  if (digits === 0 || dots !== 3) return false;
  cHi = (v << 8) | octet;
  cLo = 0;
  return true;
}

/** IPv6 written as hex groups (at most one `::`, no embedded IPv4, no zone): its first 64 bits into cHi, cLo. */
function parseIpv6(ip: string): boolean {
  const n = ip.length;
  if (n < 2 || n > 39) return false;
  let i = 0;
  let count = 0;
  let gap = -1; // number of groups before `::`
  if (ip.charCodeAt(0) === 58) {
    if (ip.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    let v = 0;
    let d = 0;
    for (; i < n; i++) {
      const c = ip.charCodeAt(i);
      let x: number;
      if (c >= 48 && c <= 57) x = c - 48;
      else if (c >= 97 && c <= 102) x = c - 87;
      else if (c >= 65 && c <= 70) x = c - 55;
      else break;
      if (++d > 4) return false;
      v = (v << 4) | x;
    }
    if (d === 0 || count === 8) return false;
    groups[count++] = v;
    if (i === n) break;
    if (ip.charCodeAt(i) !== 58) return false; // '.', '%' or anything else: not this simple form
    if (++i === n) return false; // a single trailing ':'
    if (ip.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = count;
      i++;
    }
  }
  if (gap < 0 ? count !== 8 : count > 7) return false;
  const shift = 8 - count; // zero groups that `::` stands for
  // Group p of the address: written before the gap, inside it (zero), or written after it (shifted right).
  const g0 = gap < 0 || 0 < gap ? groups[0]! : 0 >= gap + shift ? groups[0 - shift]! : 0;
  const g1 = gap < 0 || 1 < gap ? groups[1]! : 1 >= gap + shift ? groups[1 - shift]! : 0;
  const g2 = gap < 0 || 2 < gap ? groups[2]! : 2 >= gap + shift ? groups[2 - shift]! : 0;
  const g3 = gap < 0 || 3 < gap ? groups[3]! : 3 >= gap + shift ? groups[3 - shift]! : 0;
  cHi = (g0 << 16) | g1;
  cLo = (g2 << 16) | g3;
  return true;
}

/**
 * The client part of a bucket key, as `clientKey` (shared/src/net.ts) defines a client: the IPv4 address, the IPv6
 * /64, else the string itself (FAM_OTHER). Normalised addresses (all that /verify passes) take the allocation-free
 * parsers; other spellings of IPv6 (embedded IPv4, zone, …) go through ipToBytes exactly as clientKey does.
 */
function parseClient(ip: string): number {
  if (parseIpv4(ip)) return FAM_V4;
  if (parseIpv6(ip)) return FAM_V6;
  if (isIP(ip) !== 6) return FAM_OTHER;
  const b = ipToBytes(ip)!;
  cHi = (b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!;
  cLo = (b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!;
  return FAM_V6;
}

/** For tests: the bits a client is counted under (`family:high:low`), or null when the string itself is the key. */
export function clientBits(ip: string): string | null {
  const fam = parseClient(ip);
  return fam === FAM_OTHER ? null : `${fam}:${cHi >>> 0}:${cLo >>> 0}`;
}

export class RateBuckets {
  /** Slot → time (ms) at which its bucket is full again; -Infinity when free. */
  private readonly fullAt: Float64Array;
  /** Slot → key, three words: host number × 4 + family, client bits 63..32, client bits 31..0. */
  private readonly keys: Int32Array;
  /** Simple tabulation hashing: 12 tables of 256 random words, one per key byte, XORed. */
  private readonly tab: Int32Array;
  private readonly setMask: number;
  /** Host key → number (hosts are the configured domains and `*`: a handful, not attacker-chosen). */
  private readonly hosts = new Map<string, number>();
  /** Client strings that are not IP addresses → number. */
  private readonly others = new Map<string, number>();
  private readonly now: () => number;

  /** `max`: slots wanted; rounded up to a power-of-two number of sets of 8. */
  constructor(opts: { max?: number; now?: () => number } = {}) {
    const want = Math.min(1 << 26, Math.max(WAYS, Math.ceil(opts.max ?? DEFAULT_MAX_BUCKETS)));
    let sets = 1;
    while (sets * WAYS < want) sets *= 2;
    this.setMask = sets - 1;
    this.fullAt = new Float64Array(sets * WAYS).fill(-Infinity);
    this.keys = new Int32Array(sets * WAYS * 3).fill(EMPTY);
    this.tab = randomFillSync(new Int32Array(12 * 256));
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
    // The key: [host × 4 + family, hi, lo]. A host or non-IP client never seen has no bucket (peek adds nothing).
    let absent = false;
    let host = this.hosts.get(hostKey);
    if (host === undefined) {
      if (consume) host = this.addHost(hostKey);
      else absent = true;
    }
    const fam = parseClient(ip);
    let hi = cHi;
    let lo = cLo;
    if (fam === FAM_OTHER) {
      let id = this.others.get(ip);
      if (id === undefined) {
        if (consume) id = this.addOther(ip);
        else absent = true;
      }
      hi = id ?? 0;
      lo = 0;
    }
    const k0 = ((host ?? 0) << 2) | fam;

    const now = this.now();
    const interval = (l.windowS * 1000) / l.limit;
    const tolerance = l.burst * interval;
    const fullAt = this.fullAt;
    const keys = this.keys;
    // Find the bucket in its set; else note the slot a new one would take: the smallest fullAt (free or
    // expired first, which loses nothing; else the bucket closest to full, which forgives the least).
    let slot = -1;
    let victim = 0;
    if (!absent) {
      const t = this.tab;
      const h =
        t[k0 & 255]! ^ t[256 + ((k0 >>> 8) & 255)]! ^ t[512 + ((k0 >>> 16) & 255)]! ^ t[768 + (k0 >>> 24)]! ^
        t[1024 + (hi & 255)]! ^ t[1280 + ((hi >>> 8) & 255)]! ^ t[1536 + ((hi >>> 16) & 255)]! ^ t[1792 + (hi >>> 24)]! ^
        t[2048 + (lo & 255)]! ^ t[2304 + ((lo >>> 8) & 255)]! ^ t[2560 + ((lo >>> 16) & 255)]! ^ t[2816 + (lo >>> 24)]!;
      const base = (h & this.setMask) * WAYS;
      let victimAt = Infinity;
      for (let s = base; s < base + WAYS; s++) {
        const k = s * 3;
        if (keys[k] === k0 && keys[k + 1] === hi && keys[k + 2] === lo) {
          slot = s;
          break;
        }
        const f = fullAt[s]!;
        if (f < victimAt) {
          victimAt = f;
          victim = s;
        }
      }
    }

    let at = slot >= 0 ? fullAt[slot]! : now;
    if (at < now) at = now;
    if (at > now + tolerance) {
      // Emptier than empty: the limit was raised since this was stored. Judge the client by the new limit.
      at = now + tolerance;
      if (consume && slot >= 0) fullAt[slot] = at;
    }
    const next = at + interval;
    if (next - now > tolerance + 1e-6) {
      const waitMs = next - tolerance - now;
      return { ok: false, retryAfterS: Math.max(1, Math.ceil(waitMs / 1000 - 1e-9)) };
    }
    if (consume) {
      if (slot < 0) {
        slot = victim;
        const k = slot * 3;
        keys[k] = k0;
        keys[k + 1] = hi;
        keys[k + 2] = lo;
      }
      fullAt[slot] = next;
    }
    return OK;
  }

  private addHost(hostKey: string): number {
    if (this.hosts.size >= MAX_HOSTS) this.clear();
    const id = this.hosts.size;
    this.hosts.set(hostKey, id);
    return id;
  }

  private addOther(client: string): number {
    if (this.others.size >= MAX_OTHERS) {
      // The numbers are about to be reused: first forget the buckets that carry them.
      for (let s = 0; s < this.fullAt.length; s++) {
        if ((this.keys[s * 3]! & 3) === FAM_OTHER) {
          this.keys[s * 3] = EMPTY;
          this.fullAt[s] = -Infinity;
        }
      }
      this.others.clear();
    }
    const id = this.others.size;
    this.others.set(client, id);
    return id;
  }

  /** Buckets in debt now (fewer tokens than a fresh bucket): the only ones that carry information. */
  get size(): number {
    const now = this.now();
    const fullAt = this.fullAt;
    let n = 0;
    for (let s = 0; s < fullAt.length; s++) if (fullAt[s]! > now) n++;
    return n;
  }

  /** Slots in the table: at most this many buckets in debt are remembered. */
  get max(): number {
    return this.fullAt.length;
  }

  /** Bytes of the table, all allocated by the constructor. */
  get bytes(): number {
    return this.fullAt.byteLength + this.keys.byteLength + this.tab.byteLength;
  }

  clear(): void {
    this.fullAt.fill(-Infinity);
    this.keys.fill(EMPTY);
    this.hosts.clear();
    this.others.clear();
  }
}
