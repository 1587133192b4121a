/** The panel's observability wiring: Caddy drift becomes one audited `caddy.drift` per episode; /metrics access by network. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '@argos/shared/config';
import { openStore } from '@argos/shared/store';
import { listAudit } from '@argos/shared/audit';
import { loadSettings } from '@argos/shared/settings';
import { silentLogger } from '@argos/shared/log';
import type { CaddyStatus } from './app.ts';
import { Observability, gatekeeperBase } from './observability.ts';

test('drift is audited once per episode (the notifier reports it as a Caddy event); metrics are for allowed networks only', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-obs-'));
  const key = randomBytes(32);
  const config = loadConfig({ ARGOS_MASTER_KEY: key.toString('hex'), ARGOS_DATA_DIR: tmp, ARGOS_PORTAL_URL: 'https://auth.example.com' });
  const store = await openStore(config, 'migrator');
  const settings = await loadSettings(store.db);
  let status: CaddyStatus = { reachable: true, inSync: true, lastError: null, lastAppliedAt: 1 };
  const obs = new Observability({ config, db: store.db, vault: store.vault, log: silentLogger, settings: () => settings, caddy: { status: async () => status }, country: () => null });
  try {
    const drifts = async () => (await listAudit(store.db, { action: 'caddy.drift' })).length;
    await obs.checkDrift();
    assert.equal(await drifts(), 0);
    status = { ...status, inSync: false };
    await obs.checkDrift();
    await obs.checkDrift();
    assert.equal(await drifts(), 1, 'one entry while the drift lasts');
    status = { ...status, inSync: true };
    await obs.checkDrift();
    status = { ...status, inSync: false };
    await obs.checkDrift();
    assert.equal(await drifts(), 2, 'a new episode is a new entry');

    assert.equal(obs.metricsAllowed('127.0.0.1'), true);
    assert.equal(obs.metricsAllowed('::1'), true);
    assert.equal(obs.metricsAllowed('192.168.1.20'), false);
    const text = await obs.metrics.render();
    assert.match(text, /^argos_notifications_total\{channel="smtp",outcome="sent"\} 0$/m);
    assert.match(text, /^# TYPE argos_traffic_dropped_total counter$/m);
    assert.deepEqual(obs.health(), { notifications: { queued: 0, dropped: 0 }, traffic: { ingested: 0, dropped: 0, reading: false } });
    assert.equal(gatekeeperBase({ gatekeeperListen: { host: '0.0.0.0', port: 9091 } }), 'http://127.0.0.1:9091');
    assert.equal(gatekeeperBase({ gatekeeperListen: { host: '::', port: 9091 } }), 'http://[::1]:9091');
  } finally {
    await store.db.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
