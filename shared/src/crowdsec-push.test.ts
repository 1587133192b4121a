import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { banTarget, banToAlert, CrowdsecPusher } from './crowdsec-push.ts';
import { AuthFailureLog } from './auth-log.ts';

const NOW = Date.UTC(2026, 11, 3, 12, 0, 0);

test('crowdsec push: a client ban becomes an alert with one ban decision, shaped like the LAPI swagger wants', () => {
  const a = banToAlert({ key: 'client:203.0.113.9', until: NOW + 900_000, strikes: 1, reason: 'too many failed logins from this client' }, NOW, 5)!;
  for (const k of ['scenario', 'scenario_hash', 'scenario_version', 'message', 'events_count', 'start_at', 'stop_at', 'capacity', 'leakspeed', 'simulated', 'events', 'source']) {
    assert.ok(k in a, `required field ${k}`);
  }
  assert.deepEqual(a.source, { scope: 'Ip', value: '203.0.113.9', ip: '203.0.113.9' });
  assert.deepEqual(a.decisions, [{ origin: 'argos', type: 'ban', scope: 'Ip', value: '203.0.113.9', duration: '900s', scenario: 'argos/login-bruteforce' }]);
  assert.equal(a.start_at, '2026-12-03T12:00:00Z');
  assert.equal(a.events_count, 5);
});

test('crowdsec push: IPv6 clients are their /64 (a Range); pair bans and finished bans are not pushed', () => {
  assert.deepEqual(banTarget('client:2001:db8:1:2::/64'), { scope: 'Range', value: '2001:db8:1:2::/64' });
  assert.equal(banTarget('pair:alice|203.0.113.9'), null, 'a user/client pair ban must not ban the whole address');
  assert.equal(banTarget('client:not-an-ip'), null);
  assert.equal(banToAlert({ key: 'client:203.0.113.9', until: NOW - 1, strikes: 1, reason: 'x' }, NOW), null);
});

test('crowdsec push: the queue is bounded and push never blocks or throws', async () => {
  let calls = 0;
  const never = (() => {
    calls++;
    return new Promise<Response>(() => undefined);
  }) as typeof fetch;
  const p = new CrowdsecPusher({ url: () => 'http://127.0.0.1:1', machineId: () => 'argos', password: () => 'pw', fetch: never, maxQueue: 3 });
  const ban = (i: number) => ({ key: `client:192.0.2.${i}`, until: Date.now() + 60_000, strikes: 1, reason: 'x' });
  const results = [1, 2, 3, 4, 5, 6].map((i) => p.push(ban(i)));
  assert.deepEqual(results, [true, true, true, true, false, false], 'one in flight, three queued, the rest dropped');
  assert.equal(p.status().dropped, 2);
  await new Promise((r) => setImmediate(r));
  assert.equal(calls, 1, 'one request in flight at a time');
  const off = new CrowdsecPusher({ url: () => null, machineId: () => 'argos', password: () => 'pw' });
  assert.equal(off.push(ban(1)), false, 'not configured: nothing queued');
});

test('auth log: one JSON line per failure, no control characters, rotation at the size limit', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-authlog-'));
  const file = path.join(dir, 'logs', 'argos-auth.log');
  const log = new AuthFailureLog(file, { service: 'argos-test', rotateBytes: 2000, now: () => NOW });
  log.record({ ip: '203.0.113.9', user: 'ali\nce"}' });
  await log.close();
  const line = JSON.parse(fs.readFileSync(file, 'utf8').trim());
  assert.deepEqual(line, { time: '2026-12-03T12:00:00.000Z', service: 'argos-test', event: 'auth_failure', source_ip: '203.0.113.9', user: 'ali?ce"}' });
  const log2 = new AuthFailureLog(file, { rotateBytes: 2000 });
  for (let i = 0; i < 40; i++) log2.record({ ip: `192.0.2.${i}`, user: 'bob' });
  await log2.close();
  assert.ok(fs.existsSync(`${file}.1`), 'rotated');
  assert.ok(fs.statSync(file).size < 2000 + 200);
  fs.rmSync(dir, { recursive: true, force: true });
});
