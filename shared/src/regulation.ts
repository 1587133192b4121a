/**
 * Login regulation against brute force and credential stuffing, shared by the portal and the panel.
 *
 * - Per client (IPv4 address or IPv6 /64): `maxFailures` within `window` → ban for `banTime`, doubling
 *   on each repeat up to a day. A banned client is refused before any password hashing.
 * - Per (username, client): the same threshold locks that pair only, so an attacker cannot lock the real
 *   user out from everywhere.
 * - Per username across all clients: failures beyond the threshold add a growing delay (slow down, no lockout).
 * State lives in bounded LRU maps: memory stays flat whatever number of addresses or names an attacker uses;
 * eviction can only forgive. Bans (not attempts) are reported through `onBan` so they can be persisted.
 */
import { LRUCache } from 'lru-cache';
import { clientKey } from './net.ts';

export interface RegulationLimits {
  maxFailures: number;
  windowS: number;
  banTimeS: number;
}

export interface Ban {
  key: string;
  until: number;
  strikes: number;
  reason: string;
}

interface Counter {
  failures: number[];
  strikes: number;
  bannedUntil: number;
}

export interface RegulatorOptions {
  limits: () => RegulationLimits;
  now?: () => number;
  maxEntries?: number;
  onBan?: (ban: Ban) => void;
  /** Every failed attempt (e.g. for the CrowdSec auth log). Must not throw or block. */
  onFailure?: (ip: string, username?: string) => void;
}

const MAX_BAN_MS = 86_400_000;

export class Regulator {
  private readonly clients: LRUCache<string, Counter>;
  private readonly pairs: LRUCache<string, Counter>;
  private readonly users: LRUCache<string, Counter>;
  private readonly codes: LRUCache<string, Counter>;
  /** Clients and usernames with an attempt being checked right now (bounded by concurrency). */
  private readonly inFlight = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly opts: RegulatorOptions) {
    const max = opts.maxEntries ?? 100_000;
    this.clients = new LRUCache({ max });
    this.pairs = new LRUCache({ max });
    this.users = new LRUCache({ max: Math.max(1000, max >> 2) });
    this.codes = new LRUCache({ max: Math.max(1000, max >> 2) });
    this.now = opts.now ?? Date.now;
  }

  /** Loads persisted bans (at startup). */
  restore(bans: Ban[]): void {
    const now = this.now();
    for (const b of bans) {
      if (b.until <= now) continue;
      const map = b.key.startsWith('pair:') ? this.pairs : this.clients;
      const key = b.key.replace(/^(client|pair):/, '');
      const cur = map.get(key);
      if (cur && cur.bannedUntil >= b.until) continue;
      map.set(key, { failures: cur?.failures ?? [], strikes: Math.max(b.strikes, cur?.strikes ?? 0), bannedUntil: b.until });
    }
  }

  /** Remaining ban in seconds for this client (and username, when given), or 0. Does not count anything. */
  blockedFor(ip: string, username?: string): number {
    // Nothing counted yet (the usual state on /verify): no key to build, nothing to look up.
    if (this.clients.size === 0 && (!username || this.pairs.size === 0)) return 0;
    const now = this.now();
    const c = this.clients.get(clientKey(ip));
    let until = c && c.bannedUntil > now ? c.bannedUntil : 0;
    if (username) {
      const p = this.pairs.get(pairKey(username, ip));
      if (p && p.bannedUntil > now) until = Math.max(until, p.bannedUntil);
    }
    return until ? Math.ceil((until - now) / 1000) : 0;
  }

  /**
   * Starts one attempt for a client (and username). Refused while the client is banned, or while another attempt of
   * the same client is still being checked: attempts are counted before the next one can start, so a burst of
   * parallel requests gets no more guesses than the limits allow. `exclusiveUser` also serialises attempts per
   * username (second-factor steps: whoever reaches them already has the password; the password step itself stays
   * per client, so an attacker cannot lock a user out from everywhere). Always call `done()` (try/finally).
   */
  begin(ip: string, username?: string, exclusiveUser = false): { ok: true; done: () => void } | { ok: false; retryAfterS: number } {
    const blocked = Math.max(this.blockedFor(ip, username), exclusiveUser && username ? this.secondFactorBlockedFor(username) : 0);
    if (blocked > 0) return { ok: false, retryAfterS: blocked };
    const keys = [`c:${clientKey(ip)}`, ...(exclusiveUser && username ? [`u:${username.toLowerCase()}`] : [])];
    if (keys.some((k) => this.inFlight.has(k))) return { ok: false, retryAfterS: 1 };
    for (const k of keys) this.inFlight.add(k);
    let released = false;
    return {
      ok: true,
      done: () => {
        if (released) return;
        released = true;
        for (const k of keys) this.inFlight.delete(k);
      },
    };
  }

  /**
   * Second-factor failures per username across all clients: once the password is known, a distributed guesser must
   * not get unlimited codes. After 4× the failure limit within the window, the code step is refused for that user.
   */
  secondFactorBlockedFor(username: string): number {
    const u = this.codes.get(username.toLowerCase());
    if (!u) return 0;
    const { maxFailures, banTimeS } = this.opts.limits();
    const recent = this.recent(u);
    if (recent < maxFailures * 4) return 0;
    const last = u.failures[u.failures.length - 1] ?? this.now();
    return Math.max(1, Math.ceil((last + banTimeS * 1000 - this.now()) / 1000));
  }

  /** Records a failed second factor (TOTP or recovery code): counts for the client like a failed login, and per user. */
  failSecondFactor(ip: string, username: string): Ban | null {
    const key = username.toLowerCase();
    const u = this.codes.get(key) ?? { failures: [], strikes: 0, bannedUntil: 0 };
    u.failures.push(this.now());
    if (u.failures.length > 1000) u.failures.splice(0, u.failures.length - 1000);
    this.codes.set(key, u);
    return this.fail(ip, username);
  }

  /** Extra delay (ms) to apply before answering a login for this username: grows with distributed failures. */
  slowdownMs(username: string): number {
    const u = this.users.get(username.toLowerCase());
    if (!u) return 0;
    const { maxFailures } = this.opts.limits();
    const recent = this.recent(u);
    const excess = recent - maxFailures * 2;
    return excess > 0 ? Math.min(10_000, excess * 500) : 0;
  }

  /** Records a failed attempt. Returns the ban it triggered, if any. */
  fail(ip: string, username?: string): Ban | null {
    const now = this.now();
    this.opts.onFailure?.(ip, username);
    const key = clientKey(ip);
    let ban = this.count(this.clients, key, now, `client:${key}`, 'too many failed logins from this client');
    if (username) {
      const pk = pairKey(username, ip);
      const pairBan = this.count(this.pairs, pk, now, `pair:${pk}`, `too many failed logins for ${username.toLowerCase()} from this client`);
      ban ??= pairBan;
      const u = this.users.get(username.toLowerCase()) ?? { failures: [], strikes: 0, bannedUntil: 0 };
      u.failures.push(now);
      if (u.failures.length > 1000) u.failures.splice(0, u.failures.length - 1000);
      this.users.set(username.toLowerCase(), u);
    }
    if (ban) this.opts.onBan?.(ban);
    return ban;
  }

  /** A successful login clears the pair's counter (not the client's ban or the per-user history). */
  succeed(ip: string, username: string): void {
    this.pairs.delete(pairKey(username, ip));
  }

  /**
   * Makes the persisted bans the truth: restores them, and lifts any ban this process holds that the database no
   * longer has (an operator removed it). Local failure counts are kept.
   */
  syncBans(bans: Ban[]): void {
    this.restore(bans);
    const keep = new Set(bans.map((b) => b.key));
    const now = this.now();
    for (const [map, prefix] of [[this.clients, 'client:'], [this.pairs, 'pair:']] as const) {
      for (const [key, c] of map.entries()) {
        if (c.bannedUntil > now && !keep.has(prefix + key)) c.bannedUntil = 0;
      }
    }
  }

  /** Lifts every ban and counter of a client (operator action). */
  unban(ip: string): void {
    this.clients.delete(clientKey(ip));
  }

  get size(): { clients: number; pairs: number; users: number } {
    return { clients: this.clients.size, pairs: this.pairs.size, users: this.users.size };
  }

  private recent(c: Counter): number {
    const windowMs = this.opts.limits().windowS * 1000;
    const since = this.now() - windowMs;
    while (c.failures.length && c.failures[0]! < since) c.failures.shift();
    return c.failures.length;
  }

  private count(map: LRUCache<string, Counter>, key: string, now: number, banKey: string, reason: string): Ban | null {
    const limits = this.opts.limits();
    const c = map.get(key) ?? { failures: [], strikes: 0, bannedUntil: 0 };
    c.failures.push(now);
    if (c.failures.length > limits.maxFailures) c.failures.splice(0, c.failures.length - limits.maxFailures);
    map.set(key, c);
    if (c.bannedUntil > now) return null;
    if (this.recent(c) < limits.maxFailures) return null;
    c.strikes += 1;
    c.bannedUntil = now + Math.min(MAX_BAN_MS, limits.banTimeS * 1000 * 2 ** (c.strikes - 1));
    c.failures = [];
    return { key: banKey, until: c.bannedUntil, strikes: c.strikes, reason };
  }
}

const pairKey = (username: string, ip: string) => `${username.toLowerCase()}|${clientKey(ip)}`;
