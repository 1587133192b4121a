/**
 * The panel's long-running observability jobs, started and stopped by main.ts: the notifier (audit log →
 * e-mail / webhook), the access-log ingestor (Caddy's JSON log → access_log), the Caddy drift watcher (audits
 * `caddy.drift`, which the notifier then reports), the Prometheus metrics, and the gatekeeper's /healthz as seen
 * from the panel (CrowdSec, geo database, dropped decision-log lines).
 */
import type { Config } from '@argos/shared/config';
import type { Database } from '@argos/shared/db/sqlite';
import type { Vault } from '@argos/shared/crypto';
import type { Logger } from '@argos/shared/log';
import type { SettingsMap } from '@argos/shared/settings';
import { recordEvent, SYSTEM_ACTOR } from '@argos/shared/audit';
import { GeoDb } from '@argos/shared/geo';
import { inAnyCidr, parseCidr, type Cidr } from '@argos/shared/net';
import type { CaddyStatus } from './app.ts';
import { smtpChannel, webhookChannel, type Channel, type ChannelName } from './notify/channels.ts';
import { Notifier, type NotifierOptions } from './notify/notifier.ts';
import { AccessLogIngestor, type IngestOptions } from './traffic/ingest.ts';
import { PanelMetrics } from './metrics.ts';

export interface ObservabilityDeps {
  config: Config;
  db: Database;
  vault: Vault;
  log: Logger;
  settings: () => SettingsMap;
  caddy?: { status(): Promise<CaddyStatus> };
  /** Country lookup; default: Argos's country database (as the gatekeeper uses it), when it opens. */
  country?: (ip: string) => string | null;
  /** Tests: channel doubles and faster timings. */
  channels?: Partial<Record<ChannelName, Channel>>;
  notifier?: Partial<NotifierOptions>;
  ingest?: Partial<IngestOptions>;
  driftEveryMs?: number;
}

const HEALTH_CACHE_MS = 5000;

export class Observability {
  readonly notifier: Notifier;
  readonly ingestor: AccessLogIngestor;
  readonly metrics: PanelMetrics;
  readonly channels: Record<ChannelName, Channel>;
  private geo: GeoDb | null = null;
  private driftTimer: NodeJS.Timeout | null = null;
  private lastInSync: boolean | null = null;
  private gkHealth: { at: number; value: Promise<Record<string, unknown> | null> } | null = null;

  constructor(private readonly deps: ObservabilityDeps) {
    const { db, vault, log } = deps;
    this.channels = { smtp: smtpChannel({ db, vault }), webhook: webhookChannel({ db, vault }), ...deps.channels };
    const country = (ip: string) => (deps.country ? deps.country(ip) : (this.geo?.country(ip) ?? null));
    this.notifier = new Notifier({ db, log, settings: deps.settings, channels: this.channels, country, opts: deps.notifier, onOutcome: (c, o) => this.metrics.delivery(c, o) });
    this.ingestor = new AccessLogIngestor({ db, log, file: deps.config.caddyAccessLog, country, opts: deps.ingest });
    this.metrics = new PanelMetrics({
      notifyDepth: () => this.notifier.depth,
      notifyDropped: () => this.notifier.dropped,
      trafficLines: () => this.ingestor.lines,
      trafficIngested: () => this.ingestor.ingested,
      trafficDropped: () => this.ingestor.dropped,
      trafficSkipped: () => this.ingestor.skipped,
      trafficDepth: () => this.ingestor.depth,
      writeQueue: () => db.queueDepth,
    });
  }

  async start(): Promise<void> {
    const { config, log } = this.deps;
    if (!this.deps.country) {
      try {
        this.geo = await GeoDb.openDefault(config.dataDir, { log });
        this.geo.watch(60_000, log);
      } catch (err) {
        log.warn({ err: err instanceof Error ? err.message : String(err) }, 'no country database: traffic has no countries and new-country alerts are off');
      }
    }
    await this.notifier.start();
    await this.ingestor.start().catch((err) => log.error({ err: err instanceof Error ? err.message : String(err), file: config.caddyAccessLog }, 'access log ingestion cannot start'));
    if (this.deps.caddy) {
      this.driftTimer = setInterval(() => void this.checkDrift(), this.deps.driftEveryMs ?? 60_000);
      this.driftTimer.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.driftTimer) clearInterval(this.driftTimer);
    this.geo?.unwatch();
    await this.notifier.stop();
    await this.ingestor.stop();
  }

  /** Audits `caddy.drift` when Caddy's running config stops matching Argos's (once per episode). */
  async checkDrift(): Promise<void> {
    try {
      const s = await this.deps.caddy!.status();
      if (!s.reachable || s.inSync === null) return;
      if (s.inSync === false && this.lastInSync !== false) {
        await recordEvent(this.deps.db, SYSTEM_ACTOR, { action: 'caddy.drift', target: 'caddy', details: { last_applied_at: s.lastAppliedAt } });
      }
      this.lastInSync = s.inSync;
    } catch (err) {
      this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'Caddy drift check failed');
    }
  }

  /** Counters for the panel's /healthz (no settings, addresses or errors: it is unauthenticated). */
  health(): Record<string, unknown> {
    const n = this.notifier;
    const t = this.ingestor;
    return { notifications: { queued: n.depth, dropped: n.dropped }, traffic: { ingested: t.ingested, dropped: t.dropped, reading: t.position !== null } };
  }

  /** The gatekeeper's /healthz (CrowdSec, geo, dropped log lines), cached a few seconds; null when it does not answer. */
  gatekeeperHealth(): Promise<Record<string, unknown> | null> {
    const now = Date.now();
    if (this.gkHealth && now - this.gkHealth.at < HEALTH_CACHE_MS) return this.gkHealth.value;
    const value = fetchGatekeeperHealth(this.deps.config);
    this.gkHealth = { at: now, value };
    return value;
  }

  /** Whether a client address may read /metrics without signing in (setting metrics.allowed_networks). */
  metricsAllowed(ip: string): boolean {
    const cidrs = this.deps.settings()['metrics.allowed_networks'].map((t) => parseCidr(t)).filter((c): c is Cidr => c !== null);
    return inAnyCidr(cidrs, ip);
  }
}

/** Where the panel reaches the gatekeeper's own endpoints (a wildcard listen address means this machine). */
export function gatekeeperBase(config: Pick<Config, 'gatekeeperListen'>): string {
  const { host, port } = config.gatekeeperListen;
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

export async function fetchGatekeeperHealth(config: Pick<Config, 'gatekeeperListen'>): Promise<Record<string, unknown> | null> {
  try {
    const res = await fetch(`${gatekeeperBase(config)}/healthz`, { signal: AbortSignal.timeout(1500) });
    const body = (await res.json()) as unknown;
    return body && typeof body === 'object' ? (body as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
