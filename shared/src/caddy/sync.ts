/**
 * Keeping Caddy in step with the database: builds the config (pure function) from hosts + environment,
 * loads it through the admin API, records the outcome (shared by panel and CLI through the meta table),
 * audits every apply, and re-applies automatically when a host change lands from any process.
 * In the embedded default (no ARGOS_CADDY_ADMIN) the panel runs Caddy itself, admin API on a unix socket.
 */
import path from 'node:path';
import { isIP } from 'node:net';
import type { Config } from '../config.ts';
import type { Database } from '../db/sqlite.ts';
import type { Logger } from '../log.ts';
import { recordEvent, SYSTEM_ACTOR, type Actor } from '../audit.ts';
import { listHosts } from '../repos/hosts.ts';
import { changeCounter } from '../store.ts';
import { buildCaddyConfig, caddyConfigHash } from './config.ts';
import { applyConfig, drift, CaddyAdminClient } from './admin.ts';
import { findCaddy, startCaddy, type CaddyProcess } from './process.ts';

export interface CaddyStatus {
  mode: 'managed' | 'external' | 'absent';
  reachable: boolean;
  inSync: boolean | null;
  lastError: string | null;
  lastAppliedAt: number | null;
}

/** The admin API address Argos uses: ARGOS_CADDY_ADMIN, or a unix socket in the data directory. */
export function caddyAdminAddress(config: Config): string {
  return config.caddyAdmin ?? `unix/${path.join(config.dataDir, 'caddy-admin.sock')}`;
}

/**
 * The admin block Caddy should keep: for the managed Caddy, the unix socket; for an external Caddy reached at
 * http://<ip>:<port>, that address; at http://<name>:<port> (a container name), all interfaces of its own
 * network namespace with the Host check limited to that name.
 */
export function caddyAdminBlock(config: Config): { listen: string; origins?: string[] } {
  const addr = caddyAdminAddress(config);
  if (addr.startsWith('unix/')) return { listen: addr };
  const u = new URL(addr);
  const port = u.port || '2019';
  if (isIP(u.hostname.replace(/^\[|\]$/g, ''))) return { listen: `${u.hostname}:${port}` };
  return { listen: `0.0.0.0:${port}`, origins: [`${u.hostname}:${port}`, u.hostname] };
}

export async function buildConfigFromDb(config: Config, db: Database): Promise<Record<string, unknown>> {
  const hosts = await listHosts(db);
  return buildCaddyConfig({
    hosts,
    portal: config.portalUrl,
    panel: config.mode === 'behind_caddy' && config.panelDomain ? { domain: config.panelDomain, dial: config.panelDial } : null,
    gatekeeperDial: config.gatekeeperDial,
    httpPort: config.caddyHttpPort,
    httpsPort: config.caddyHttpsPort,
    admin: caddyAdminBlock(config),
    accessLog: config.caddyAccessLog,
    bindHost: config.caddyBind ?? undefined,
  });
}

export class CaddySync {
  private readonly admin: CaddyAdminClient;
  private proc: CaddyProcess | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastCounter = -1;
  private applying: Promise<unknown> = Promise.resolve();
  readonly mode: CaddyStatus['mode'];

  constructor(private readonly deps: { config: Config; db: Database; log: Logger }) {
    this.admin = new CaddyAdminClient(caddyAdminAddress(deps.config));
    this.mode = deps.config.caddyAdmin ? 'external' : findCaddy() ? 'managed' : 'absent';
  }

  /** Starts managed Caddy (or applies to an external one), then watches for host changes. */
  async start(pollMs = 500): Promise<void> {
    const { config, log } = this.deps;
    if (this.mode === 'absent') {
      log.warn('Caddy is not installed (apt-get install caddy) and ARGOS_CADDY_ADMIN is not set: hosts are saved but not published');
    } else if (this.mode === 'managed') {
      const built = await buildConfigFromDb(config, this.deps.db);
      this.proc = await startCaddy({ config: built, adminListen: caddyAdminAddress(config), dataDir: config.dataDir, log });
      await this.record({ ok: true, hash: caddyConfigHash(built) }, SYSTEM_ACTOR, 'caddy.start');
    } else {
      await this.apply(SYSTEM_ACTOR);
    }
    this.lastCounter = await changeCounter(this.deps.db, 'config');
    this.timer = setInterval(() => void this.watch(), pollMs);
    this.timer.unref();
  }

  private async watch(): Promise<void> {
    try {
      const c = await changeCounter(this.deps.db, 'config');
      if (c === this.lastCounter || this.mode === 'absent') return;
      this.lastCounter = c;
      const built = await buildConfigFromDb(this.deps.config, this.deps.db);
      const last = await this.meta('caddy.last_hash');
      if (last === caddyConfigHash(built)) return;
      await this.apply(SYSTEM_ACTOR);
    } catch (err) {
      this.deps.log.error({ err }, 'automatic Caddy apply failed');
    }
  }

  /** Builds and loads the config; a refused load leaves Caddy's previous config running. Audited either way. */
  apply(actor: Actor): Promise<{ ok: true } | { ok: false; error: string }> {
    const run = async () => {
      if (this.mode === 'absent') return { ok: false as const, error: 'Caddy is not installed and ARGOS_CADDY_ADMIN is not set' };
      let built: Record<string, unknown>;
      try {
        built = await buildConfigFromDb(this.deps.config, this.deps.db);
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        await this.record({ ok: false, error }, actor, 'caddy.apply');
        return { ok: false as const, error };
      }
      const r = await applyConfig(this.admin, built);
      await this.record(r, actor, 'caddy.apply');
      return r.ok ? { ok: true as const } : { ok: false as const, error: r.error };
    };
    const p = this.applying.then(run, run);
    this.applying = p.catch(() => undefined);
    return p;
  }

  async status(): Promise<CaddyStatus> {
    const lastError = await this.meta('caddy.last_error');
    const at = await this.meta('caddy.last_applied_at');
    if (this.mode === 'absent') return { mode: this.mode, reachable: false, inSync: null, lastError, lastAppliedAt: at ? Number(at) : null };
    const built = await buildConfigFromDb(this.deps.config, this.deps.db);
    const d = await drift(this.admin, built);
    return { mode: this.mode, reachable: d.reachable, inSync: d.reachable ? d.inSync : null, lastError: lastError || null, lastAppliedAt: at ? Number(at) : null };
  }

  preview(): Promise<Record<string, unknown>> {
    return buildConfigFromDb(this.deps.config, this.deps.db);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.applying;
    await this.proc?.stop();
    this.proc = null;
  }

  private async meta(key: string): Promise<string | null> {
    return (await this.deps.db.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [key]))?.value ?? null;
  }

  private async record(r: { ok: true; hash: string } | { ok: false; error: string }, actor: Actor, action: string): Promise<void> {
    const now = Date.now();
    const upsert = 'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value';
    await this.deps.db.write(async (tx) => {
      if (r.ok) {
        await tx.run(upsert, ['caddy.last_hash', r.hash]);
        await tx.run(upsert, ['caddy.last_applied_at', String(now)]);
        await tx.run(upsert, ['caddy.last_error', '']);
      } else {
        await tx.run(upsert, ['caddy.last_error', r.error.slice(0, 2000)]);
      }
    });
    if (r.ok) this.deps.log.info({ action }, 'Caddy configuration loaded');
    else this.deps.log.error({ action, error: r.error }, 'Caddy refused the configuration; the previous one keeps running');
    await recordEvent(this.deps.db, actor, { action: r.ok ? action : `${action}.failed`, target: 'caddy', details: r.ok ? { hash: r.hash } : { error: r.error.slice(0, 500) } });
  }
}
