/**
 * What the dashboard and the traffic page show, computed from the access log, the decision log, the audit log
 * and the running jobs: time windows, chart series, ranked lists and the health of every dependency.
 * Results are cached for a few seconds per (window, host), so a phone refreshing the dashboard costs little.
 */
import type { Database } from '@argos/shared/db/sqlite';
import { normalizeHost } from '@argos/shared/hostname';
import {
  decisionReasons,
  decisionSeries,
  logTableUse,
  requestSeries,
  filterHosts,
  topClients,
  topCountries,
  topDeniedIps,
  topPaths,
  trafficByHost,
  type SeriesPoint,
  type TableUse,
  type Window,
} from '@argos/shared/repos/access-log';
import { channelHealth } from '@argos/shared/repos/notifications';
import type { SettingsMap } from '@argos/shared/settings';
import type { CaddyStatus } from '../app.ts';
import { fmtInt, hbar, stackedBars, type Series, type StackedChart } from '../charts.ts';
import type { Observability } from '../observability.ts';

export const RANGES = {
  hour: { label: 'Last hour', spanMs: 3_600_000, buckets: 60 },
  day: { label: 'Last day', spanMs: 86_400_000, buckets: 48 },
  week: { label: 'Last week', spanMs: 7 * 86_400_000, buckets: 56 },
} as const;
export type RangeKey = keyof typeof RANGES;

export function parseRange(raw: unknown): RangeKey {
  return typeof raw === 'string' && Object.hasOwn(RANGES, raw) ? (raw as RangeKey) : 'day';
}

/** The window ending at the next bucket boundary (stable across requests, so caching works). */
export function windowFor(range: RangeKey, host: string | null, now: number): Window {
  const r = RANGES[range];
  const bucketMs = r.spanMs / r.buckets;
  const until = Math.ceil((now + 1) / bucketMs) * bucketMs;
  return { since: until - r.spanMs, until, bucketMs, host };
}

export function parseHost(raw: unknown): string | null {
  return typeof raw === 'string' && raw ? normalizeHost(raw) : null;
}

const STATUS_SERIES = [
  { key: '2xx', label: '2xx', cls: 'k-ok' },
  { key: '3xx', label: '3xx', cls: 'k-info' },
  { key: '4xx', label: '4xx', cls: 'k-warn' },
  { key: '5xx', label: '5xx', cls: 'k-err' },
  { key: 'other', label: 'other', cls: 'k-muted' },
];
const VERDICT_SERIES = [
  { key: 'allow', label: 'allowed', cls: 'k-ok' },
  { key: 'redirect', label: 'session hand-off', cls: 'k-info2' },
  { key: 'login', label: 'sent to login', cls: 'k-info' },
  { key: 'enroll', label: 'sent to 2FA enrollment', cls: 'k-info2' },
  { key: 'rate_limited', label: 'rate-limited', cls: 'k-warn' },
  { key: 'deny', label: 'denied', cls: 'k-err' },
  { key: 'bad_request', label: 'bad request', cls: 'k-err2' },
];

const pad = (n: number) => String(n).padStart(2, '0');
function bucketLabel(ms: number, range: RangeKey): string {
  const d = new Date(ms);
  const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  return range === 'week' ? `${['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getUTCDay()]} ${pad(d.getUTCDate())} ${hm}` : hm;
}

function toSeries(points: readonly SeriesPoint[], defs: ReadonlyArray<{ key: string; label: string; cls: string }>, n: number): Series[] {
  const known = new Set(defs.map((d) => d.key));
  const extra = [...new Set(points.map((p) => p.key).filter((k) => !known.has(k)))].map((k) => ({ key: k, label: k, cls: 'k-muted' }));
  return [...defs, ...extra].map((d) => {
    const values = new Array<number>(n).fill(0);
    for (const p of points) if (p.key === d.key && p.bucket >= 0 && p.bucket < n) values[p.bucket]! += p.n;
    return { ...d, values };
  });
}

export interface ChartView extends StackedChart {
  title: string;
  axis: string[];
}

function chart(title: string, points: readonly SeriesPoint[], defs: ReadonlyArray<{ key: string; label: string; cls: string }>, w: Window, range: RangeKey): ChartView {
  const n = RANGES[range].buckets;
  const labels = Array.from({ length: n }, (_, i) => `${bucketLabel(w.since + i * w.bucketMs, range)}–${bucketLabel(w.since + (i + 1) * w.bucketMs, range)} UTC`);
  const c = stackedBars(title, toSeries(points, defs, n), labels);
  return { ...c, title, axis: [bucketLabel(w.since, range), bucketLabel(w.since + (w.until - w.since) / 2, range), `${bucketLabel(w.until, range)} UTC`] };
}

/** A ranked list with the bar markup for each row. */
function ranked<T extends { n: number }>(rows: readonly T[]): Array<T & { bar: string }> {
  const max = Math.max(0, ...rows.map((r) => r.n));
  return rows.map((r) => ({ ...r, bar: hbar(r.n, max) }));
}

export interface HealthItem {
  name: string;
  state: 'ok' | 'warn' | 'error' | 'off';
  text: string;
}

const ago = (ms: number, now: number) => {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172_800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} days ago`;
};

export class Overview {
  private readonly cache = new Map<string, { at: number; value: Promise<unknown> }>();
  private tableUse: { at: number; value: Promise<TableUse[]> } | null = null;

  constructor(
    private readonly db: Database,
    private readonly obs: Observability | null,
    private readonly cacheMs = 10_000,
  ) {}

  private cached<T>(key: string, now: number, fn: () => Promise<T>): Promise<T> {
    const hit = this.cache.get(key);
    if (hit && now - hit.at < this.cacheMs) return hit.value as Promise<T>;
    const value = fn();
    value.catch(() => this.cache.delete(key));
    this.cache.set(key, { at: now, value });
    if (this.cache.size > 50) this.cache.delete(this.cache.keys().next().value!);
    return value;
  }

  /** The dashboard's charts and lists. */
  charts(range: RangeKey, host: string | null, now: number) {
    const w = windowFor(range, host, now);
    return this.cached(`charts:${range}:${host ?? ''}:${w.until}`, now, async () => {
      const [requests, decisions, reasons, countries, denied, hosts] = await Promise.all([
        requestSeries(this.db, w),
        decisionSeries(this.db, w),
        decisionReasons(this.db, w, 10),
        topCountries(this.db, w, 10),
        topDeniedIps(this.db, w, 10),
        filterHosts(this.db),
      ]);
      return {
        window: w,
        requests: chart('Requests by status', requests, STATUS_SERIES, w, range),
        decisions: chart('Gatekeeper decisions by outcome', decisions, VERDICT_SERIES, w, range),
        reasons: ranked(reasons.map((r) => ({ ...r, note: r.verdict }))),
        countries: ranked(countries),
        denied: ranked(denied.map((d) => ({ ...d, note: [d.country, d.reason].filter(Boolean).join(' · ') }))),
        hosts,
      };
    });
  }

  /** The traffic page's tables. */
  traffic(range: RangeKey, host: string | null, now: number) {
    const w = windowFor(range, host, now);
    return this.cached(`traffic:${range}:${host ?? ''}:${w.until}`, now, async () => {
      const [byHost, paths, clients, hosts] = await Promise.all([trafficByHost(this.db, w), topPaths(this.db, w, 15), topClients(this.db, w, 15), filterHosts(this.db)]);
      return { window: w, byHost: ranked(byHost), paths: ranked(paths), clients: ranked(clients), hosts };
    });
  }

  /** Disk use of the log tables (dbstat reads every page: computed at most every 10 minutes). */
  logTables(now: number): Promise<TableUse[]> {
    if (!this.tableUse || now - this.tableUse.at > 600_000) {
      const value = logTableUse(this.db);
      value.catch(() => (this.tableUse = null));
      this.tableUse = { at: now, value };
    }
    return this.tableUse.value;
  }

  /** The state of every dependency, for the dashboard. */
  async health(caddy: CaddyStatus, settings: SettingsMap, now: number): Promise<HealthItem[]> {
    const items: HealthItem[] = [];
    if (caddy.mode === 'absent') items.push({ name: 'Caddy', state: 'off', text: 'not installed: hosts are saved but not published' });
    else if (!caddy.reachable) items.push({ name: 'Caddy', state: 'error', text: `not reachable${caddy.lastError ? `: ${caddy.lastError}` : ''}` });
    else if (caddy.inSync === false) items.push({ name: 'Caddy', state: 'warn', text: "reachable, but its running configuration differs from Argos's (drift)" });
    else items.push({ name: 'Caddy', state: 'ok', text: `reachable and in sync${caddy.lastAppliedAt ? `, applied ${ago(caddy.lastAppliedAt, now)}` : ''}` });

    const gk = this.obs ? await this.obs.gatekeeperHealth() : null;
    if (!this.obs) items.push({ name: 'Gatekeeper', state: 'off', text: 'not checked' });
    else if (!gk) items.push({ name: 'Gatekeeper', state: 'error', text: 'does not answer /healthz' });
    else {
      const dropped = Number(gk.decision_log_dropped ?? 0);
      items.push({ name: 'Gatekeeper', state: dropped ? 'warn' : 'ok', text: `answering${dropped ? `; ${fmtInt(dropped)} decision-log lines dropped since start` : ''}` });
      const cs = gk.crowdsec as Record<string, unknown> | undefined;
      if (!cs || cs.enabled === false || !cs.url) items.push({ name: 'CrowdSec', state: 'off', text: 'not configured' });
      else if (cs.stale) items.push({ name: 'CrowdSec', state: 'error', text: `unreachable: the last known decisions are enforced${cs.lastError ? ` (${String(cs.lastError)})` : ''}` });
      else items.push({ name: 'CrowdSec', state: cs.connected === false ? 'warn' : 'ok', text: `${cs.connected === false ? 'not connected yet' : 'connected'}; ${fmtInt(Number(cs.decisions ?? 0))} decisions` });
      const geo = gk.geo as Record<string, unknown> | undefined;
      const built = typeof geo?.build === 'string' ? Date.parse(geo.build) : NaN;
      if (Number.isFinite(built)) {
        const days = Math.floor((now - built) / 86_400_000);
        items.push({ name: 'Country database', state: days > 45 ? 'warn' : 'ok', text: `${String(geo!.database ?? 'database')} built ${days} days ago (${String(geo!.source ?? '')})` });
      } else items.push({ name: 'Country database', state: 'off', text: 'no information from the gatekeeper' });
    }
    const geoError = (await this.db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'geo.last_error'"))?.value;
    if (geoError) items.push({ name: 'Country database update', state: 'warn', text: `last update failed: ${geoError}` });

    const lastBackup = await this.db.get<{ ts: number }>("SELECT ts FROM audit_log WHERE action = 'backup.create' ORDER BY id DESC LIMIT 1");
    const lastBackupFail = await this.db.get<{ ts: number }>("SELECT ts FROM audit_log WHERE action LIKE 'backup.%failed' ORDER BY id DESC LIMIT 1");
    if (lastBackupFail && (!lastBackup || lastBackupFail.ts > lastBackup.ts)) items.push({ name: 'Backups', state: 'error', text: `the last backup failed (${ago(lastBackupFail.ts, now)})` });
    else if (!lastBackup) items.push({ name: 'Backups', state: 'warn', text: 'no backup made yet' });
    else items.push({ name: 'Backups', state: now - lastBackup.ts > 8 * 86_400_000 ? 'warn' : 'ok', text: `last backup ${ago(lastBackup.ts, now)}` });

    for (const [channel, name, configured] of [
      ['smtp', 'E-mail', !!settings['smtp.host']],
      ['webhook', 'Webhook', !!settings['webhook.url']],
    ] as const) {
      if (!configured) {
        items.push({ name, state: 'off', text: 'not set up' });
        continue;
      }
      const h = await channelHealth(this.db, channel);
      if (h.lastFailure && (!h.lastSuccess || h.lastFailure > h.lastSuccess)) items.push({ name, state: 'error', text: `last delivery failed ${ago(h.lastFailure, now)}: ${h.lastError ?? ''}` });
      else items.push({ name, state: h.lastSuccess ? 'ok' : 'warn', text: h.lastSuccess ? `last success ${ago(h.lastSuccess, now)}` : 'nothing delivered yet (try Send test)' });
    }
    if (this.obs) {
      const n = this.obs.notifier;
      items.push({ name: 'Notification queue', state: n.dropped ? 'warn' : 'ok', text: `${n.depth} waiting, ${fmtInt(n.dropped)} dropped since start` });
      const t = this.obs.ingestor;
      items.push({
        name: 'Traffic ingestion',
        state: t.dropped ? 'warn' : t.lastError ? 'warn' : 'ok',
        text: `${fmtInt(t.ingested)} requests ingested, ${fmtInt(t.dropped)} dropped since start${t.lastReadAt ? `; last read ${ago(t.lastReadAt, now)}` : ''}${t.lastError ? `; ${t.lastError}` : ''}`,
      });
    }
    return items;
  }
}
