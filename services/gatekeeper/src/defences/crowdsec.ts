/**
 * The gatekeeper as a CrowdSec bouncer.
 *
 * Pulls the Local API decision stream (`GET /v1/decisions/stream`, `startup=true` first, then deltas) every few
 * seconds with the bouncer key in `X-Api-Key`, and keeps the IP and range decisions (IPv4 and IPv6) in memory:
 * - exact addresses in a Map keyed by the normalised address;
 * - ranges in one Map per prefix length and family, keyed by the network (a number for IPv4, the hex of the masked
 *   address for IPv6); a lookup masks the client address once per distinct prefix length of its family (a handful
 *   in practice, at most 33 or 129), so it costs O(prefix lengths), independent of the number of decisions.
 * Each decision expires locally at the end of its own `duration`, even if the stream never mentions it again.
 * When the LAPI is down or refuses the key, the last known decisions stay in force and the state is marked stale.
 */
import { ipToBytes, normalizeIp, parseCidr } from '@argos/shared/net';

export interface CsDecision {
  id: number;
  type: string;
  scope: 'ip' | 'range';
  /** Normalised address, or network text `addr/len`. */
  value: string;
  origin: string;
  scenario: string;
  untilMs: number;
}

/** A decision as the LAPI sends it. */
export interface LapiDecision {
  id?: number;
  type?: string;
  scope?: string;
  value?: string;
  origin?: string;
  scenario?: string;
  duration?: string;
  until?: string;
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go duration ("3h59m59.3s", "-20.118549ms", "0") into milliseconds; null when malformed. */
export function parseGoDuration(text: string): number | null {
  const s = text.trim();
  if (s === '0' || s === '+0' || s === '-0') return 0;
  const m = /^([-+]?)(.+)$/.exec(s);
  if (!m) return null;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  const body = m[2]!;
  while (pos < body.length) {
    re.lastIndex = pos;
    const t = re.exec(body);
    if (!t) return null;
    total += Number(t[1]) * UNIT_MS[t[2]!]!;
    pos = re.lastIndex;
  }
  return m[1] === '-' ? -total : total;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hexOf(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < 16; i++) s += HEX[b[i]!];
  return s;
}

/** The key of the network of `hex` (32 hex digits of a 16-byte address) at `prefix` bits. */
function networkKey(hex: string, prefix: number): string {
  const nibbles = prefix >> 2;
  const rem = prefix & 3;
  if (!rem) return hex.slice(0, nibbles);
  const last = parseInt(hex[nibbles]!, 16) & (0xf << (4 - rem)) & 0xf;
  return hex.slice(0, nibbles) + last.toString(16);
}

/** Converts a LAPI decision into ours; null for scopes Argos cannot enforce (country, AS, username …) or bad values. */
export function fromLapi(d: LapiDecision, now: number): CsDecision | null {
  if (typeof d.id !== 'number' || typeof d.value !== 'string') return null;
  const scope = (d.scope ?? '').toLowerCase();
  const ms = parseGoDuration(d.duration ?? '');
  if (ms === null || ms <= 0) return null;
  const base = { id: d.id, type: (d.type ?? 'ban').toLowerCase(), origin: d.origin ?? '', scenario: d.scenario ?? '', untilMs: now + ms };
  if (scope === 'ip' && !d.value.includes('/')) {
    const ip = normalizeIp(d.value);
    return ip ? { ...base, scope: 'ip', value: ip } : null;
  }
  if (scope === 'range' || scope === 'ip') {
    const c = parseCidr(d.value);
    if (!c) return null;
    const isHost = c.prefix === 128;
    return isHost ? { ...base, scope: 'ip', value: c.text.replace(/\/\d+$/, '') } : { ...base, scope: 'range', value: c.text };
  }
  return null;
}

/** True when a decision of this type denies the client (captcha only when treated as ban; unknown remediations deny). */
export function enforced(type: string, captchaAsBan: boolean): boolean {
  if (type === 'captcha') return captchaAsBan;
  return true;
}

/** The IPv4 address (dotted, already validated) as an unsigned 32-bit number. */
function v4ToInt(ip: string): number {
  let n = 0;
  let part = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + part;
      part = 0;
    } else part = part * 10 + (c - 48);
  }
  return n * 256 + part;
}

/** The network number of a 32-bit address at `bits` (0..32). */
const v4Net = (u: number, bits: number): number => (bits === 0 ? 0 : u >>> (32 - bits));

type Stored = CsDecision & { family: 4 | 6; key: string | number; prefix: number };

/**
 * The in-memory decision set with fast IP and range lookups. IPv4 ranges are keyed by the numeric network per
 * prefix length, IPv6 ranges by the hex of the masked network per prefix length; a v4 client is never matched
 * against v6 ranges nor the reverse.
 */
export class DecisionStore {
  private readonly byId = new Map<number, Stored>();
  private readonly exact = new Map<string, Set<number>>();
  private readonly ranges4 = new Map<number, Map<number, Set<number>>>();
  private readonly ranges6 = new Map<number, Map<string, Set<number>>>();
  /** Distinct prefix lengths present, longest first. */
  private prefixes4: number[] = [];
  private prefixes6: number[] = [];

  add(d: CsDecision): void {
    this.remove(d.id);
    if (d.scope === 'ip') {
      const set = this.exact.get(d.value) ?? new Set<number>();
      set.add(d.id);
      this.exact.set(d.value, set);
      this.byId.set(d.id, { ...d, family: d.value.includes(':') ? 6 : 4, key: d.value, prefix: -1 });
      return;
    }
    const c = parseCidr(d.value);
    if (!c) return;
    if (!c.text.includes(':')) {
      const bits = c.prefix - 96;
      const b = c.bytes;
      const key = v4Net(((b[12]! << 24) >>> 0) + (b[13]! << 16) + (b[14]! << 8) + b[15]!, bits);
      this.index(this.ranges4, bits, key, d.id, () => (this.prefixes4 = [...this.ranges4.keys()].sort((x, y) => y - x)));
      this.byId.set(d.id, { ...d, family: 4, key, prefix: bits });
    } else {
      const key = networkKey(hexOf(c.bytes), c.prefix);
      this.index(this.ranges6, c.prefix, key, d.id, () => (this.prefixes6 = [...this.ranges6.keys()].sort((x, y) => y - x)));
      this.byId.set(d.id, { ...d, family: 6, key, prefix: c.prefix });
    }
  }

  private index<K>(ranges: Map<number, Map<K, Set<number>>>, prefix: number, key: K, id: number, reindex: () => void): void {
    let byNet = ranges.get(prefix);
    if (!byNet) {
      byNet = new Map();
      ranges.set(prefix, byNet);
      reindex();
    }
    const set = byNet.get(key) ?? new Set<number>();
    set.add(id);
    byNet.set(key, set);
  }

  remove(id: number): boolean {
    const d = this.byId.get(id);
    if (!d) return false;
    this.byId.delete(id);
    if (d.prefix < 0) {
      const set = this.exact.get(d.key as string);
      set?.delete(id);
      if (set && !set.size) this.exact.delete(d.key as string);
      return true;
    }
    const ranges = (d.family === 4 ? this.ranges4 : this.ranges6) as Map<number, Map<string | number, Set<number>>>;
    const byNet = ranges.get(d.prefix);
    const set = byNet?.get(d.key);
    set?.delete(id);
    if (set && !set.size) byNet!.delete(d.key);
    if (byNet && !byNet.size) {
      ranges.delete(d.prefix);
      if (d.family === 4) this.prefixes4 = [...this.ranges4.keys()].sort((x, y) => y - x);
      else this.prefixes6 = [...this.ranges6.keys()].sort((x, y) => y - x);
    }
    return true;
  }

  private pick(ids: Set<number> | undefined, now: number, captchaAsBan: boolean, best: CsDecision | null): CsDecision | null {
    if (!ids) return best;
    for (const id of ids) {
      const d = this.byId.get(id);
      if (!d || d.untilMs <= now || !enforced(d.type, captchaAsBan)) continue;
      if (!best || d.untilMs > best.untilMs) best = d;
    }
    return best;
  }

  /** The longest-lasting active decision that denies `ip` (normalised), or null. */
  match(ip: string, now: number, captchaAsBan = true): CsDecision | null {
    let best = this.pick(this.exact.get(ip), now, captchaAsBan, null);
    if (!ip.includes(':')) {
      if (!this.prefixes4.length) return best;
      const u = v4ToInt(ip);
      for (const p of this.prefixes4) best = this.pick(this.ranges4.get(p)!.get(v4Net(u, p)), now, captchaAsBan, best);
      return best;
    }
    if (!this.prefixes6.length) return best;
    const b = ipToBytes(ip);
    if (!b) return best;
    const hex = hexOf(b);
    for (const p of this.prefixes6) best = this.pick(this.ranges6.get(p)!.get(networkKey(hex, p)), now, captchaAsBan, best);
    return best;
  }

  /** Drops expired decisions; returns how many. */
  sweep(now: number): number {
    let n = 0;
    for (const [id, d] of this.byId) if (d.untilMs <= now && this.remove(id)) n++;
    return n;
  }

  get size(): number {
    return this.byId.size;
  }

  counts(): { ip: number; range: number; prefixLengths: number } {
    let ip = 0;
    for (const d of this.byId.values()) if (d.prefix < 0) ip++;
    return { ip, range: this.byId.size - ip, prefixLengths: this.prefixes4.length + this.prefixes6.length };
  }

  /** Active decisions (for the panel / status), at most `limit`. */
  list(limit = 100): CsDecision[] {
    const out: CsDecision[] = [];
    for (const d of this.byId.values()) {
      out.push({ id: d.id, type: d.type, scope: d.scope, value: d.value, origin: d.origin, scenario: d.scenario, untilMs: d.untilMs });
      if (out.length >= limit) break;
    }
    return out;
  }
}

export interface BouncerStatus {
  enabled: boolean;
  url: string | null;
  connected: boolean;
  stale: boolean;
  lastPullAt: number | null;
  lastSuccessAt: number | null;
  lastError: string | null;
  decisions: number;
  ipDecisions: number;
  rangeDecisions: number;
  /** Decisions that matched a request since start (panel: "decisions that hit published hosts"). */
  hits: number;
}

export interface BouncerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface BouncerOptions {
  /** The LAPI base URL (null = CrowdSec not configured). Read before every pull. */
  url: () => string | null;
  /** The bouncer key (ARGOS_CROWDSEC_KEY or the encrypted secret). Read before every pull. */
  key: () => Promise<string | null> | string | null;
  intervalMs?: () => number;
  captchaAsBan?: () => boolean;
  fetch?: typeof fetch;
  now?: () => number;
  log?: BouncerLogger;
  /** Called when the bouncer becomes stale or recovers. */
  onStateChange?: (s: BouncerStatus) => void;
  /** A full resync (startup=true) at least this often, to heal any drift. */
  resyncMs?: number;
  timeoutMs?: number;
}

export interface StreamResponse {
  new?: LapiDecision[] | null;
  deleted?: LapiDecision[] | null;
}

export class CrowdsecBouncer {
  private store = new DecisionStore();
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private pulling: Promise<void> | null = null;
  private synced: { url: string; key: string; at: number } | null = null;
  private state = { lastPullAt: null as number | null, lastSuccessAt: null as number | null, lastError: null as string | null, connected: false, hits: 0 };
  private lastReportedStale: boolean | null = null;

  constructor(private readonly opts: BouncerOptions) {
    this.now = opts.now ?? Date.now;
  }

  get enabled(): boolean {
    return !!this.opts.url();
  }

  /** The decision that denies `ip` (normalised), if any. Synchronous, in memory. */
  check(rawIp: string): CsDecision | null {
    if (!this.store.size) return null;
    const ip = normalizeIp(rawIp);
    if (!ip) return null;
    const d = this.store.match(ip, this.now(), this.opts.captchaAsBan?.() ?? true);
    if (d) this.state.hits++;
    return d;
  }

  /** Looks without counting a hit (dry runs). */
  peek(rawIp: string): CsDecision | null {
    const ip = normalizeIp(rawIp);
    return ip && this.store.size ? this.store.match(ip, this.now(), this.opts.captchaAsBan?.() ?? true) : null;
  }

  status(): BouncerStatus {
    const url = this.opts.url();
    const c = this.store.counts();
    const interval = this.opts.intervalMs?.() ?? 5000;
    const now = this.now();
    const stale = !!url && (!this.state.connected || this.state.lastSuccessAt === null || now - this.state.lastSuccessAt > 3 * interval + 10_000);
    return {
      enabled: !!url,
      url,
      connected: !!url && this.state.connected,
      stale,
      lastPullAt: this.state.lastPullAt,
      lastSuccessAt: this.state.lastSuccessAt,
      lastError: this.state.lastError,
      decisions: this.store.size,
      ipDecisions: c.ip,
      rangeDecisions: c.range,
      hits: this.state.hits,
    };
  }

  decisions(limit?: number): CsDecision[] {
    return this.store.list(limit);
  }

  /** Starts pulling (first pull at once). */
  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = async () => {
      if (!this.running) return;
      await this.pull();
      if (!this.running) return;
      this.timer = setTimeout(loop, Math.max(200, this.opts.intervalMs?.() ?? 5000));
      this.timer.unref();
    };
    void loop();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One pull (concurrent callers share it). Never throws: failures become status. */
  pull(): Promise<void> {
    this.pulling ??= this.pullOnce().finally(() => (this.pulling = null));
    return this.pulling;
  }

  private async pullOnce(): Promise<void> {
    const url = this.opts.url()?.replace(/\/+$/, '') ?? null;
    if (!url) {
      if (this.store.size || this.synced) {
        this.store = new DecisionStore();
        this.synced = null;
        this.opts.log?.info({}, 'CrowdSec no longer configured: decisions dropped');
      }
      this.state.connected = false;
      this.state.lastError = null;
      return;
    }
    const now = this.now();
    this.state.lastPullAt = now;
    try {
      const key = await this.opts.key();
      if (!key) throw new Error('no bouncer key: set ARGOS_CROWDSEC_KEY or the crowdsec.bouncer_key secret (cscli bouncers add argos-gatekeeper)');
      const startup = !this.synced || this.synced.url !== url || this.synced.key !== key || now - this.synced.at > (this.opts.resyncMs ?? 3_600_000);
      const res = await (this.opts.fetch ?? fetch)(`${url}/v1/decisions/stream?startup=${startup}&scopes=ip,range`, {
        headers: { 'X-Api-Key': key, 'User-Agent': 'argos-gatekeeper/0.1.0', Accept: 'application/json' },
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
      if (res.status === 403 || res.status === 401) throw new Error(`the LAPI refused the bouncer key (HTTP ${res.status}); keeping the last known decisions`);
      if (!res.ok) throw new Error(`LAPI answered HTTP ${res.status}`);
      const body = (await res.json()) as StreamResponse | null;
      this.apply(body, startup, this.now());
      this.synced = { url, key, at: startup ? now : this.synced!.at };
      const wasDown = !this.state.connected;
      this.state.connected = true;
      this.state.lastSuccessAt = this.now();
      this.state.lastError = null;
      if (wasDown) this.opts.log?.info({ url, decisions: this.store.size }, 'CrowdSec LAPI connected');
    } catch (e) {
      const msg = e instanceof Error ? (e.name === 'TimeoutError' ? 'LAPI did not answer in time' : e.message) : String(e);
      if (this.state.connected || this.state.lastError !== msg) this.opts.log?.warn({ url, err: msg, decisions: this.store.size }, 'CrowdSec pull failed: last known decisions stay in force');
      this.state.connected = false;
      this.state.lastError = msg;
      this.store.sweep(this.now());
    }
    this.reportState();
  }

  /** Applies a stream answer: a startup answer replaces everything; a delta adds and deletes by decision id. */
  apply(body: StreamResponse | null, startup: boolean, now: number): void {
    const fresh = startup ? new DecisionStore() : this.store;
    if (!startup) for (const d of body?.deleted ?? []) if (typeof d?.id === 'number') fresh.remove(d.id);
    for (const raw of body?.new ?? []) {
      const d = raw ? fromLapi(raw, now) : null;
      if (d) fresh.add(d);
    }
    fresh.sweep(now);
    this.store = fresh;
  }

  private reportState(): void {
    const s = this.status();
    if (this.lastReportedStale === s.stale) return;
    const first = this.lastReportedStale === null;
    this.lastReportedStale = s.stale;
    if (first && !s.stale) return;
    this.opts.onStateChange?.(s);
  }
}

/**
 * One-shot question to the LAPI (`GET /v1/decisions?ip=`), for `argos check`: the decision that denies `ip`, null
 * when there is none. Throws when the LAPI cannot be asked.
 */
export async function queryDecisions(url: string, key: string, ip: string, opts: { captchaAsBan?: boolean; fetch?: typeof fetch; now?: number } = {}): Promise<CsDecision | null> {
  const res = await (opts.fetch ?? fetch)(`${url.replace(/\/+$/, '')}/v1/decisions?ip=${encodeURIComponent(ip)}`, {
    headers: { 'X-Api-Key': key, 'User-Agent': 'argos-check/0.1.0', Accept: 'application/json' },
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`LAPI answered HTTP ${res.status}`);
  const list = ((await res.json()) as LapiDecision[] | null) ?? [];
  const store = new DecisionStore();
  const now = opts.now ?? Date.now();
  for (const raw of list) {
    const d = fromLapi(raw, now);
    if (d) store.add(d);
  }
  return store.match(ip, now, opts.captchaAsBan ?? true);
}
