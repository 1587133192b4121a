/**
 * Panel entry point: config → database (migrations, key check) → login regulation → Caddy sync → HTTP.
 * Fails closed at startup: any configuration or database problem stops the process with a clear message.
 */
import http from 'node:http';
import os from 'node:os';
import { loadConfigOrExit, type Config } from '@argos/shared/config';
import { createLogger, type Logger } from '@argos/shared/log';
import { openStore } from '@argos/shared/store';
import { Regulator } from '@argos/shared/regulation';
import { listActiveBans } from '@argos/shared/repos/bans';
import { countUsers } from '@argos/shared/repos/users';
import { addUser, setPassword } from '@argos/shared/commands/users';
import { SYSTEM_ACTOR } from '@argos/shared/audit';
import type { Database } from '@argos/shared/db/sqlite';
import { loadSettings, type SettingsMap } from '@argos/shared/settings';
import { createPanel } from './app.ts';
import { CaddySync } from '@argos/shared/caddy/sync';
import { scheduleHousekeeping } from '@argos/shared/housekeeping';
import { scheduleGeoUpdates } from '@argos/shared/geo-update';
import { syncBans } from '@argos/shared/ban-sync';
import { saveBan } from '@argos/shared/repos/bans';
import { randomPassword } from '@argos/shared/crypto';
import { Observability } from './observability.ts';
import { watchDatabase } from '@argos/shared/epoch';
import { scheduleMaintenance } from '@argos/shared/maintenance';

process.umask(0o077);
const config = loadConfigOrExit();
const log = createLogger('panel', config.logLevel);
const SETTINGS_REFRESH_MS = 2000;

/**
 * First boot only: with no user at all, create the initial admin (ARGOS_INITIAL_ADMIN_USER, default "admin") with
 * ARGOS_INITIAL_ADMIN_PASSWORD or a generated one-time password printed once to the terminal (never to the log).
 * The admin must choose a new password at first sign-in. Later boots ignore the variables, with a warning.
 */
async function bootstrapAdmin(db: Database, cfg: Config, logger: Logger): Promise<void> {
  if ((await countUsers(db)) > 0) {
    if (cfg.initialAdminPassword) logger.warn('ARGOS_INITIAL_ADMIN_PASSWORD is ignored after the first boot: remove it from your environment / .env');
    return;
  }
  const username = cfg.initialAdminUser ?? 'admin';
  const password = cfg.initialAdminPassword ?? randomPassword(20);
  const user = await addUser(db, SYSTEM_ACTOR, { username, password, isAdmin: true });
  await setPassword(db, SYSTEM_ACTOR, user.username, password, true);
  logger.info({ username: user.username }, 'initial admin created; the password must be changed at first sign-in');
  if (!cfg.initialAdminPassword) {
    const line = '='.repeat(64);
    process.stdout.write(`\n${line}\n  Argos initial admin\n    username:           ${user.username}\n    one-time password:  ${password}\n  Sign in to the panel with it; you will choose a new password.\n  This is shown once and is not written to any log.\n${line}\n\n`);
  }
}

/** The addresses an operator can type into a browser. */
function panelUrls(cfg: Config): string[] {
  if (cfg.mode === 'behind_caddy' && cfg.panelDomain) return [`https://${cfg.panelDomain}`];
  const { host, port } = cfg.panelListen;
  const fmtHost = (h: string) => (h.includes(':') ? `[${h}]` : h);
  if (host !== '0.0.0.0' && host !== '::') return [`http://${fmtHost(host)}:${port}`];
  const lan = Object.values(os.networkInterfaces())
    .flat()
    .filter((i): i is os.NetworkInterfaceInfo => !!i && !i.internal && i.family === 'IPv4')
    .map((i) => `http://${i.address}:${port}`);
  return [`http://localhost:${port}`, ...lan];
}

async function main() {
  const { db, vault } = await openStore(config, 'migrator');
  await bootstrapAdmin(db, config, log);
  let settings: SettingsMap = await loadSettings(db);
  const refresh = setInterval(() => {
    loadSettings(db).then(
      (s) => (settings = s),
      (err) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'settings reload failed'),
    );
  }, SETTINGS_REFRESH_MS);
  refresh.unref();

  const regulator = new Regulator({
    // Every ban is persisted, so the gatekeeper enforces it on every host and it survives restarts.
    onBan: (ban) => void db.write((tx) => saveBan(tx, ban)).catch((err: unknown) => log.error({ err }, 'saving a ban failed')),
    limits: () => ({ maxFailures: settings['regulation.max_failures'], windowS: settings['regulation.window'], banTimeS: settings['regulation.ban_time'] }),
  });
  regulator.restore(await listActiveBans(db));
  const stopBanSync = syncBans(db, regulator, log);

  const stopHousekeeping = scheduleHousekeeping(db, log);
  // Monthly country-database update while geo.auto_update is on (checked every 6 h; the gatekeeper hot-reloads the file).
  const geoUpdates = scheduleGeoUpdates({ db, dataDir: config.dataDir, settings: () => settings, log });
  const stopMaintenance = scheduleMaintenance({ db, vault, masterKey: config.masterKey, dataDir: config.dataDir }, log); // scheduled backups, audit retention
  const dbWatch = watchDatabase({ service: 'panel', db, vault, log, onRestore: async () => void (settings = await loadSettings(db)) });
  const caddy = new CaddySync({ config, db, log });
  await caddy.start();
  const observability = new Observability({ config, db, vault, log, settings: () => settings, caddy });
  await observability.start();
  const app = createPanel({ config, db, vault, regulator, log, caddy, observability });
  const server = http.createServer(app.callback());
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  server.listen(config.panelListen.port, config.panelListen.host, () => {
    const urls = panelUrls(config);
    log.info({ listen: `${config.panelListen.host}:${config.panelListen.port}`, mode: config.mode, urls }, `panel listening: open ${urls[0]}`);
    if (config.mode === 'lan') log.warn('LAN mode: the panel is served over plain HTTP; use ARGOS_MODE=behind_caddy to publish it with TLS');
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'panel stopping');
    clearInterval(refresh);
    stopHousekeeping();
    geoUpdates.stop();
    stopMaintenance();
    dbWatch.stop();
    stopBanSync();
    server.close();
    server.closeIdleConnections();
    const force = setTimeout(() => server.closeAllConnections(), 5000);
    force.unref();
    await new Promise<void>((resolve) => server.once('close', () => resolve()));
    await observability.stop().catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'stopping notifications and ingestion failed'));
    await caddy.stop().catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'stopping Caddy failed'));
    await db.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  log.fatal({ err: err instanceof Error ? err.message : String(err) }, 'panel cannot start');
  process.stderr.write(`panel: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
