import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '@argos/shared/config';
import { openStore } from '@argos/shared/store';
import { silentLogger } from '@argos/shared/log';
import { DecisionLog, type DecisionEntry } from './decision-log.ts';

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function store() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-dlog-'));
  dirs.push(dir);
  const config = loadConfig({ ARGOS_MASTER_KEY: randomBytes(32).toString('hex'), ARGOS_DATA_DIR: dir, ARGOS_PORTAL_URL: 'https://auth.example.com' }, dir);
  return openStore(config, 'migrator');
}

const entry = (i: number, patch: Partial<DecisionEntry> = {}): DecisionEntry => ({
  ts: 1_800_000_000_000 + i, requestId: `req-${i}`, host: 'app.example.com', method: 'GET', path: `/p/${i}`, ip: '203.0.113.9',
  country: 'US', user: null, verdict: 'login', reason: 'not_authenticated', status: 401, latencyUs: 120, ...patch,
});

test('decision log: a full batch is written at once, without waiting for the timer; rows keep order and types', async () => {
  const { db } = await store();
  // No start(): no timer. Only the batch threshold can write.
  const log = new DecisionLog(db, silentLogger, { maxQueue: 1000, batch: 50, intervalMs: 60_000, flushAt: 50 });
  for (let i = 0; i < 49; i++) log.push(entry(i));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await db.get<{ n: number }>('SELECT count(*) AS n FROM decision_log'))!.n, 0, 'below the threshold nothing is written yet');
  log.push(entry(49, { user: "o'brien \\ ü", country: null, path: '/a"b' }));
  for (let i = 0; i < 100 && log.written < 50; i++) await new Promise((r) => setTimeout(r, 20));
  const rows = await db.all<{ request_id: string; user: string | null; country: string | null; path: string; status: number; latency_us: number }>(
    'SELECT request_id, user, country, path, status, latency_us FROM decision_log ORDER BY id',
  );
  assert.equal(rows.length, 50);
  assert.deepEqual(rows.map((r) => r.request_id), Array.from({ length: 50 }, (_, i) => `req-${i}`));
  assert.deepEqual(rows[49], { request_id: 'req-49', user: "o'brien \\ ü", country: null, path: '/a"b', status: 401, latency_us: 120 });
  await db.close();
});

test('decision log: when the queue is full, entries are dropped and counted, never awaited', async () => {
  const { db } = await store();
  const log = new DecisionLog(db, silentLogger, { maxQueue: 10, batch: 500, intervalMs: 60_000, flushAt: 500 });
  for (let i = 0; i < 15; i++) log.push(entry(i));
  assert.equal(log.depth, 10);
  assert.equal(log.dropped, 5);
  await log.stop();
  assert.equal((await db.get<{ n: number }>('SELECT count(*) AS n FROM decision_log'))!.n, 10, 'stop() writes what was queued');
  await db.close();
});
