/**
 * Gatekeeper entry point: config → database (schema wait, key check) → state → server.
 * Fails closed at startup: any configuration or database problem stops the process with a clear message.
 */
import './heap.ts'; // first: sets V8's heap growing factor before the caches and state are built
import { loadConfigOrExit } from '@argos/shared/config';
import { createLogger } from '@argos/shared/log';
import { openStore } from '@argos/shared/store';
import { Regulator } from '@argos/shared/regulation';
import { listActiveBans } from '@argos/shared/repos/bans';
import { GatekeeperState } from './state.ts';
import { DecisionLog } from './decision-log.ts';
import { Metrics } from './metrics.ts';
import { createPortal } from './portal/app.ts';
import { createGatekeeperServer } from './server.ts';
import { Credentials } from './identity/credentials.ts';
import { SessionIssuer } from './identity/sessions.ts';
import { createDefences } from './defences/index.ts';
import { watchDatabase } from '@argos/shared/epoch';
import { syncBans } from '@argos/shared/ban-sync';
import { saveBan } from '@argos/shared/repos/bans';

process.umask(0o077);
const config = loadConfigOrExit();
const log = createLogger('gatekeeper', config.logLevel);

async function main() {
  const { db, vault } = await openStore(config, 'reader');
  let state: GatekeeperState | null = null;
  const defences = await createDefences({ config, db, vault, log, settings: () => state?.settings });
  const regulator = new Regulator({
    // Every ban is persisted (so other processes and restarts enforce it), then handed to CrowdSec.
    onBan: (ban) => {
      db.write((tx) => saveBan(tx, ban)).catch((err) => log.error({ err }, 'saving a ban failed'));
      defences.onBan(ban);
    },
    onFailure: defences.onFailure,
    limits: () => {
      const s = state!.settings;
      return { maxFailures: s['regulation.max_failures'], windowS: s['regulation.window'], banTimeS: s['regulation.ban_time'] };
    },
  });
  regulator.restore(await listActiveBans(db));
  // Bans decided by the panel (or another gatekeeper) are enforced here within a second.
  const stopBanSync = syncBans(db, regulator, log);
  state = new GatekeeperState({ db, config, log, regulator, geo: defences.geo, rate: defences.rate, crowdsec: defences.crowdsec });
  await state.start();
  // A restore swaps the content in place (reload caches); a key rotation or a replaced file stops the process with a message.
  const dbWatch = watchDatabase({ service: 'gatekeeper', db, vault, log, onRestore: () => state!.poll() });
  defences.start();
  const decisions = new DecisionLog(db, log);
  decisions.start();
  const metrics = new Metrics({
    argos_session_cache_size: { help: 'Cached sessions', get: () => state!.sessionCacheSize },
    argos_decision_log_queue: { help: 'Decision log entries waiting to be written', get: () => decisions.depth },
    argos_decision_log_dropped_total: { help: 'Decision log entries dropped on a full queue', get: () => decisions.dropped },
    argos_write_queue_depth: { help: 'Writes waiting in this process', get: () => db.queueDepth },
    argos_regulation_clients: { help: 'Clients tracked by login regulation', get: () => regulator.size.clients },
    ...defences.gauges,
  });
  const sessions = new SessionIssuer({ db, state, log });
  const credentials = new Credentials({ config, db, state, regulator, log, sessions });
  state.credentials = credentials;
  const portal = createPortal({ config, db, vault, state, regulator, credentials, sessions, log });
  const server = createGatekeeperServer({
    config,
    state,
    decisions,
    metrics,
    portal,
    log,
    health: async () => {
      await db.get('SELECT 1');
      return { status: 'ok', database: 'ok', hosts: state!.hosts.size, decision_log_dropped: decisions.dropped, ...defences.health() };
    },
  });
  server.listen(config.gatekeeperListen.port, config.gatekeeperListen.host, () => {
    log.info({ listen: `${config.gatekeeperListen.host}:${config.gatekeeperListen.port}`, portal: config.portalUrl.origin }, 'gatekeeper listening');
  });
  // Ctrl-C under `npm start` delivers SIGINT from the terminal and SIGTERM from the launcher: stop once.
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    log.info('gatekeeper stopping');
    server.close();
    server.closeAllConnections();
    state!.stop();
    stopBanSync();
    dbWatch.stop();
    await defences.stop();
    await decisions.stop();
    await db.close();
    process.exit(0);
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((err) => {
  log.fatal({ err: err instanceof Error ? err.message : String(err) }, 'gatekeeper cannot start');
  process.stderr.write(`gatekeeper: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
