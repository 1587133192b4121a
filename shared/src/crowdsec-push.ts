/**
 * Argos → CrowdSec: bans decided by Argos's own login regulation are pushed to the Local API as alerts carrying
 * a ban decision, with machine (watcher) credentials: `POST /v1/watchers/login` → JWT, then `POST /v1/alerts`.
 * Works with the LAPI alone (no agent needed), so every bouncer of the operator's CrowdSec (and the community
 * blocklist, when enrolled) learns about the brute-forcer.
 *
 * Fire-and-forget from the caller's point of view: `push()` only enqueues into a bounded queue (a full queue drops
 * the newest and counts it); one worker sends, retries a few times with backoff, and logs failures.
 * The alert shape follows the LAPI swagger (models Alert, Decision, Source) as `cscli decisions add` fills it.
 */
import type { Ban } from './regulation.ts';
import { isIP } from 'node:net';

export const ARGOS_SCENARIO = 'argos/login-bruteforce';
export const ARGOS_ORIGIN = 'argos';
/**
 * CrowdSec 1.4's LAPI parses the User-Agent as name/version on machine login and answers 401 "incorrect Username
 * or Password" when it cannot (e.g. plain "node" or "argos"), whatever the credentials.
 */
export const USER_AGENT = 'argos/0.1.0';

export interface LapiAlert {
  scenario: string;
  scenario_hash: string;
  scenario_version: string;
  message: string;
  events_count: number;
  start_at: string;
  stop_at: string;
  capacity: number;
  leakspeed: string;
  simulated: boolean;
  remediation: boolean;
  events: { timestamp: string; meta: { key: string; value: string }[] }[];
  source: { scope: string; value: string; ip?: string; range?: string };
  decisions: { origin: string; type: string; scope: string; value: string; duration: string; scenario: string }[];
  labels?: string[];
}

/** The CrowdSec scope and value of a regulation ban key (`client:<ipv4>` or `client:<ipv6 /64>`); null for pair bans. */
export function banTarget(key: string): { scope: 'Ip' | 'Range'; value: string } | null {
  if (!key.startsWith('client:')) return null;
  const v = key.slice('client:'.length);
  if (v.includes('/')) return /^[0-9a-f:]+\/\d{1,3}$/i.test(v) ? { scope: 'Range', value: v } : null;
  return isIP(v) ? { scope: 'Ip', value: v } : null;
}

/** Builds the alert for one regulation ban; null when the ban is not about a whole client (or already over). */
export function banToAlert(ban: Ban, now: number, failures?: number): LapiAlert | null {
  const target = banTarget(ban.key);
  const seconds = Math.ceil((ban.until - now) / 1000);
  if (!target || seconds <= 0) return null;
  const ts = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const message = `Argos: ${ban.reason} (${target.value}), banned for ${seconds}s, strike ${ban.strikes}`;
  return {
    scenario: ARGOS_SCENARIO,
    scenario_hash: '',
    scenario_version: '',
    message,
    events_count: failures ?? 1,
    start_at: ts,
    stop_at: ts,
    capacity: 0,
    leakspeed: '0',
    simulated: false,
    remediation: true,
    events: [],
    source: { scope: target.scope, value: target.value, ...(target.scope === 'Ip' ? { ip: target.value } : { range: target.value }) },
    decisions: [{ origin: ARGOS_ORIGIN, type: 'ban', scope: target.scope, value: target.value, duration: `${seconds}s`, scenario: ARGOS_SCENARIO }],
    labels: ['argos', 'login'],
  };
}

export interface PushLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface PusherOptions {
  /** LAPI base URL; null = not configured (bans are not pushed). */
  url: () => string | null;
  machineId: () => string;
  /** The machine password (secret crowdsec.machine_password); null = not configured. */
  password: () => Promise<string | null> | string | null;
  /** Setting crowdsec.push_bans. */
  enabled?: () => boolean;
  fetch?: typeof fetch;
  now?: () => number;
  log?: PushLogger;
  maxQueue?: number;
  retries?: number;
  retryDelayMs?: number;
}

export interface PusherStatus {
  queued: number;
  sent: number;
  failed: number;
  dropped: number;
  lastError: string | null;
  lastSentAt: number | null;
}

export class CrowdsecPusher {
  private readonly queue: Ban[] = [];
  private working: Promise<void> | null = null;
  private token: { value: string; url: string; machine: string; expiresAt: number } | null = null;
  private readonly stats: PusherStatus = { queued: 0, sent: 0, failed: 0, dropped: 0, lastError: null, lastSentAt: null };
  private readonly now: () => number;

  constructor(private readonly opts: PusherOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Enqueues a ban (never blocks, never throws). Returns false when it will not be pushed. */
  push(ban: Ban): boolean {
    if (!this.opts.url() || this.opts.enabled?.() === false || !banTarget(ban.key)) return false;
    if (this.queue.length >= (this.opts.maxQueue ?? 100)) {
      this.stats.dropped++;
      this.opts.log?.warn({ key: ban.key }, 'CrowdSec push queue full: ban not pushed');
      return false;
    }
    this.queue.push(ban);
    this.working ??= this.work().finally(() => (this.working = null));
    return true;
  }

  /** Resolves when the queue is empty (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.working) await this.working;
  }

  status(): PusherStatus {
    return { ...this.stats, queued: this.queue.length };
  }

  private async work(): Promise<void> {
    while (this.queue.length) {
      const ban = this.queue.shift()!;
      const retries = this.opts.retries ?? 3;
      for (let attempt = 0; ; attempt++) {
        try {
          const id = await this.send(ban);
          if (id === null) break;
          this.stats.sent++;
          this.stats.lastSentAt = this.now();
          this.stats.lastError = null;
          this.opts.log?.info({ key: ban.key, alert: id }, 'login ban pushed to CrowdSec');
          break;
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          if (attempt >= retries) {
            this.stats.failed++;
            this.stats.lastError = msg;
            this.opts.log?.warn({ key: ban.key, err: msg }, 'could not push login ban to CrowdSec');
            break;
          }
          await new Promise((r) => setTimeout(r, (this.opts.retryDelayMs ?? 1000) * 2 ** attempt));
        }
      }
    }
  }

  /** Sends one ban; returns the alert id, or null when there is nothing to send. */
  private async send(ban: Ban): Promise<string | null> {
    const url = this.opts.url()?.replace(/\/+$/, '');
    if (!url) return null;
    const alert = banToAlert(ban, this.now());
    if (!alert) return null;
    let token = await this.login(url, false);
    let res = await this.post(url, token, [alert]);
    if (res.status === 401 || res.status === 403) {
      token = await this.login(url, true);
      res = await this.post(url, token, [alert]);
    }
    if (res.status !== 201 && res.status !== 200) throw new Error(`LAPI refused the alert: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    const ids = (await res.json()) as unknown;
    return Array.isArray(ids) ? String(ids[0]) : 'ok';
  }

  private post(url: string, token: string, alerts: LapiAlert[]): Promise<Response> {
    return (this.opts.fetch ?? fetch)(`${url}/v1/alerts`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'User-Agent': USER_AGENT },
      body: JSON.stringify(alerts),
      signal: AbortSignal.timeout(10_000),
    });
  }

  private async login(url: string, force: boolean): Promise<string> {
    const machine = this.opts.machineId();
    const t = this.token;
    if (!force && t && t.url === url && t.machine === machine && t.expiresAt - 60_000 > this.now()) return t.value;
    const password = await this.opts.password();
    if (!password) throw new Error('no machine password: set the crowdsec.machine_password secret (cscli machines add argos --password …)');
    const res = await (this.opts.fetch ?? fetch)(`${url}/v1/watchers/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'User-Agent': USER_AGENT },
      body: JSON.stringify({ machine_id: machine, password, scenarios: [ARGOS_SCENARIO] }),
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) throw new Error(`CrowdSec machine login as "${machine}" failed: HTTP ${res.status}`);
    const body = (await res.json()) as { token?: string; expire?: string };
    if (!body.token) throw new Error('CrowdSec machine login returned no token');
    const exp = body.expire ? Date.parse(body.expire) : NaN;
    this.token = { value: body.token, url, machine, expiresAt: Number.isFinite(exp) ? exp : this.now() + 30 * 60_000 };
    return body.token;
  }
}
