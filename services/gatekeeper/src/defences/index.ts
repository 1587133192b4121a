/**
 * The gatekeeper's network defences, built once at startup: the country database (hot-reloaded when the updater
 * installs a new file), the rate buckets, the CrowdSec bouncer, the push of Argos's own bans to CrowdSec and the
 * authentication-failure log for CrowdSec's agent. Everything the /verify path asks of them is synchronous and in memory.
 */
import type { Config } from '@argos/shared/config';
import type { Database } from '@argos/shared/db/sqlite';
import type { Vault } from '@argos/shared/crypto';
import type { Logger } from '@argos/shared/log';
import type { SettingsMap } from '@argos/shared/settings';
import { readSecret } from '@argos/shared/secrets';
import { recordEvent, SYSTEM_ACTOR } from '@argos/shared/audit';
import { GeoDb } from '@argos/shared/geo';
import { CrowdsecPusher } from '@argos/shared/crowdsec-push';
import { AuthFailureLog, authLogPath } from '@argos/shared/auth-log';
import type { Ban } from '@argos/shared/regulation';
import { RateBuckets } from './rate.ts';
import { CrowdsecBouncer, type BouncerStatus } from './crowdsec.ts';

export interface DefencesDeps {
  config: Config;
  db: Database;
  vault: Vault;
  log: Logger;
  /** The current settings (undefined until the state has loaded them). */
  settings: () => SettingsMap | undefined;
}

export interface Defences {
  geo: GeoDb;
  rate: RateBuckets;
  crowdsec: CrowdsecBouncer;
  pusher: CrowdsecPusher;
  authLog: AuthFailureLog;
  /** For Regulator's onBan: pushes client bans to CrowdSec (fire-and-forget). */
  onBan(ban: Ban): void;
  /** For Regulator's onFailure: one line in the auth log. */
  onFailure(ip: string, username?: string): void;
  start(): void;
  stop(): Promise<void>;
  health(): Record<string, unknown>;
  gauges: Record<string, { help: string; get: () => number }>;
}

export function crowdsecUrl(config: Pick<Config, 'crowdsecUrl'>, settings: SettingsMap | undefined): string | null {
  return config.crowdsecUrl ?? (settings?.['crowdsec.url'] || null);
}

export async function createDefences(d: DefencesDeps): Promise<Defences> {
  const { config, db, vault, log } = d;
  // Fails closed at startup: with no usable country database at all, country rules could not be enforced.
  const geo = await GeoDb.openDefault(config.dataDir, { log });
  const rate = new RateBuckets();
  const url = () => crowdsecUrl(config, d.settings());
  const crowdsec = new CrowdsecBouncer({
    url,
    key: async () => config.crowdsecKey ?? (await readSecret(db, vault, 'crowdsec.bouncer_key')),
    intervalMs: () => (d.settings()?.['crowdsec.pull_interval'] ?? 5) * 1000,
    captchaAsBan: () => d.settings()?.['crowdsec.captcha_as_ban'] ?? true,
    log,
    onStateChange: (s: BouncerStatus) => {
      if (s.stale) log.error({ url: s.url, err: s.lastError, decisions: s.decisions }, 'CrowdSec is stale: enforcing the last known decisions');
      recordEvent(db, SYSTEM_ACTOR, {
        action: s.stale ? 'crowdsec.stale' : 'crowdsec.recovered',
        target: s.url ?? '',
        details: { error: s.lastError, decisions: s.decisions },
      }).catch((err) => log.warn({ err }, 'could not audit the CrowdSec state change'));
    },
  });
  const pusher = new CrowdsecPusher({
    url,
    machineId: () => d.settings()?.['crowdsec.machine_id'] || 'argos',
    password: () => readSecret(db, vault, 'crowdsec.machine_password'),
    enabled: () => d.settings()?.['crowdsec.push_bans'] ?? true,
    log,
  });
  const authLog = new AuthFailureLog(authLogPath(config.caddyAccessLog), { service: 'argos-gatekeeper' });

  return {
    geo,
    rate,
    crowdsec,
    pusher,
    authLog,
    onBan: (ban) => void pusher.push(ban),
    onFailure: (ip, username) => authLog.record({ ip, user: username }),
    start() {
      geo.watch(3000, log);
      crowdsec.start();
    },
    async stop() {
      geo.unwatch();
      crowdsec.stop();
      // Give bans still queued for CrowdSec a moment; never hold shutdown hostage.
      await Promise.race([pusher.flush(), new Promise((r) => setTimeout(r, 2000).unref())]);
      await authLog.close();
    },
    health() {
      const info = geo.info();
      return {
        crowdsec: { ...crowdsec.status(), push: pusher.status() },
        geo: { database: info.databaseType, source: info.source, build: info.buildEpoch, loaded_at: info.loadedAt },
        rate: { buckets: rate.size, max_buckets: rate.max },
      };
    },
    gauges: {
      argos_crowdsec_decisions: { help: 'CrowdSec decisions (IP and range) held in memory', get: () => crowdsec.status().decisions },
      argos_crowdsec_stale: { help: '1 when the CrowdSec LAPI could not be pulled recently (last known decisions enforced)', get: () => (crowdsec.status().stale ? 1 : 0) },
      argos_crowdsec_hits_total: { help: 'Requests denied by a CrowdSec decision since start', get: () => crowdsec.status().hits },
      argos_crowdsec_push_failed_total: { help: 'Argos bans that could not be pushed to CrowdSec', get: () => pusher.status().failed + pusher.status().dropped },
      argos_rate_buckets: { help: 'Rate buckets in debt now (fewer tokens than a full bucket); the table holding them has a fixed size', get: () => rate.size },
      argos_geo_cache_size: { help: 'Cached country lookups', get: () => geo.cacheSize },
      argos_auth_log_dropped_total: { help: 'Auth-failure log lines dropped on a full buffer', get: () => authLog.dropped },
    },
  };
}
