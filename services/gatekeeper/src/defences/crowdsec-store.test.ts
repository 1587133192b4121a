/** Unit tests of the bouncer's decision store and stream handling (the real LAPI is in crowdsec.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CrowdsecBouncer, DecisionStore, fromLapi, parseGoDuration, type LapiDecision } from './crowdsec.ts';

const NOW = 1_800_000_000_000;

test('crowdsec: Go durations as the LAPI sends them', () => {
  const cases: [string, number | null][] = [
    ['3h59m59.3s', 3 * 3600_000 + 59 * 60_000 + 59_300],
    ['59m59.315963513s', 59 * 60_000 + 59_315.963513],
    ['-20.118549ms', -20.118549],
    ['4h', 4 * 3600_000],
    ['1h0m0s', 3600_000],
    ['900s', 900_000],
    ['1.5h', 5400_000],
    ['250us', 0.25],
    ['0', 0],
    ['', null],
    ['4d', null],
    ['h', null],
    ['1h junk', null],
  ];
  for (const [text, ms] of cases) {
    const got = parseGoDuration(text);
    if (ms === null) assert.equal(got, null, text);
    else assert.ok(got !== null && Math.abs(got - ms) < 1e-6, `${text} → ${got}, want ${ms}`);
  }
});

const dec = (id: number, scope: string, value: string, duration = '1h', type = 'ban'): LapiDecision => ({ id, scope, value, duration, type, origin: 'cscli', scenario: 'test' });

test('crowdsec: exact IPs, v4 and v6 ranges, IPv4-mapped clients, expiry at the decision\'s own duration', () => {
  const s = new DecisionStore();
  for (const d of [
    dec(1, 'Ip', '203.0.113.7'),
    dec(2, 'Range', '198.51.100.0/24', '30m'),
    dec(3, 'Ip', '2001:DB8::7'),
    dec(4, 'Range', '2001:db8:1::/48'),
    dec(5, 'Range', '10.0.0.0/9'),
    dec(6, 'Ip', '192.0.2.44', '10s'),
    dec(7, 'Range', '2001:db8:abcd:12::/62'),
  ]) s.add(fromLapi(d, NOW)!);
  const hit = (ip: string, at = NOW) => s.match(ip, at)?.id ?? null;
  assert.equal(hit('203.0.113.7'), 1);
  assert.equal(hit('203.0.113.8'), null);
  const b = new CrowdsecBouncer({ url: () => null, key: () => null, now: () => NOW });
  b.apply({ new: [dec(1, 'Ip', '203.0.113.7'), dec(2, 'Range', '198.51.100.0/24')] }, true, NOW);
  assert.equal(b.check('::ffff:203.0.113.7')?.id, 1, 'an IPv4-mapped client address is the IPv4 address');
  assert.equal(b.check('::ffff:198.51.100.9')?.id, 2);
  assert.equal(hit('198.51.100.42'), 2);
  assert.equal(hit('198.51.101.1'), null);
  assert.equal(hit('2001:db8::7'), 3, 'IPv6 values are normalised (case, zeros)');
  assert.equal(hit('2001:db8:1:ffff::1'), 4);
  assert.equal(hit('2001:db8:2::1'), null);
  assert.equal(hit('10.127.255.255'), 5, '/9: an odd prefix inside a byte');
  assert.equal(hit('10.128.0.0'), null);
  assert.equal(hit('2001:db8:abcd:13::1'), 7, '/62 covers …:12 to …:15');
  assert.equal(hit('2001:db8:abcd:16::1'), null);
  assert.equal(hit('192.0.2.44', NOW + 9_999), 6);
  assert.equal(hit('192.0.2.44', NOW + 10_000), null, 'expired locally without any word from the stream');
  assert.equal(hit('198.51.100.42', NOW + 30 * 60_000 + 1), null);
  assert.equal(s.sweep(NOW + 30 * 60_000 + 1), 2);
  assert.equal(s.size, 5);
});

test('crowdsec: captcha counts as ban unless the operator says otherwise; other scopes are ignored', () => {
  const s = new DecisionStore();
  s.add(fromLapi(dec(1, 'Range', '198.51.100.0/24', '1h', 'captcha'), NOW)!);
  assert.equal(s.match('198.51.100.9', NOW, true)?.type, 'captcha');
  assert.equal(s.match('198.51.100.9', NOW, false), null);
  assert.equal(fromLapi({ id: 9, scope: 'Country', value: 'CN', duration: '1h', type: 'ban' }, NOW), null);
  assert.equal(fromLapi({ id: 9, scope: 'Ip', value: 'not-an-ip', duration: '1h', type: 'ban' }, NOW), null);
  assert.equal(fromLapi({ id: 9, scope: 'Ip', value: '192.0.2.1', duration: '-3s', type: 'ban' }, NOW), null, 'negative duration = already over');
});

test('crowdsec: stream answers: null lists, startup replaces, deltas add and delete by id', () => {
  const b = new CrowdsecBouncer({ url: () => 'http://127.0.0.1:1', key: () => 'k', now: () => NOW });
  b.apply({ new: null, deleted: null }, true, NOW);
  assert.equal(b.status().decisions, 0);
  b.apply({ new: [dec(1, 'Ip', '203.0.113.7'), dec(2, 'Range', '198.51.100.0/24')], deleted: null }, true, NOW);
  assert.equal(b.check('203.0.113.7')?.id, 1);
  b.apply({ new: [dec(3, 'Ip', '2001:db8::7')], deleted: [{ id: 1, duration: '-20ms', value: '203.0.113.7', scope: 'Ip' }] }, false, NOW);
  assert.equal(b.check('203.0.113.7'), null);
  assert.equal(b.check('198.51.100.1')?.id, 2);
  assert.equal(b.check('2001:db8::7')?.id, 3);
  b.apply({ new: [dec(4, 'Ip', '192.0.2.1')], deleted: [] }, true, NOW);
  assert.equal(b.check('198.51.100.1'), null, 'a startup answer is the whole truth');
  assert.equal(b.status().decisions, 1);
});

test('crowdsec: LAPI down or key refused → last known decisions stay, status is stale, recovery is reported', async () => {
  let mode: 'ok' | 'down' | 'forbidden' = 'ok';
  const changes: boolean[] = [];
  let t = NOW;
  const fakeFetch = (async (input: string | URL | Request) => {
    const u = String(input);
    if (mode === 'down') throw new TypeError('fetch failed');
    if (mode === 'forbidden') return new Response('{"message":"access forbidden"}', { status: 403 });
    const startup = u.includes('startup=true');
    return Response.json(startup ? { new: [dec(1, 'Ip', '203.0.113.7', '1h')], deleted: null } : { new: null, deleted: null });
  }) as typeof fetch;
  const b = new CrowdsecBouncer({ url: () => 'http://127.0.0.1:1', key: () => 'k', fetch: fakeFetch, now: () => t, intervalMs: () => 5000, onStateChange: (s) => changes.push(s.stale) });
  await b.pull();
  assert.deepEqual({ connected: b.status().connected, stale: b.status().stale, decisions: b.status().decisions }, { connected: true, stale: false, decisions: 1 });
  mode = 'down';
  t += 5000;
  await b.pull();
  assert.equal(b.status().stale, true);
  assert.match(b.status().lastError ?? '', /fetch failed/);
  assert.equal(b.check('203.0.113.7')?.id, 1, 'still enforced while the LAPI is down');
  mode = 'forbidden';
  t += 5000;
  await b.pull();
  assert.match(b.status().lastError ?? '', /refused the bouncer key \(HTTP 403\)/);
  assert.equal(b.check('203.0.113.7')?.id, 1, 'still enforced with a wrong key');
  t += 3600_000;
  await b.pull();
  assert.equal(b.check('203.0.113.7'), null, 'but each decision still ends at its own duration');
  mode = 'ok';
  await b.pull();
  assert.equal(b.status().stale, false);
  assert.deepEqual(changes, [true, false]);
});

test('crowdsec: lookups stay fast with 100,000 decisions (IPs and ranges of many prefix lengths, v4 and v6)', () => {
  const s = new DecisionStore();
  let id = 0;
  for (let i = 0; i < 60_000; i++) s.add(fromLapi(dec(++id, 'Ip', `${11 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.1`), NOW)!);
  for (let i = 0; i < 20_000; i++) s.add(fromLapi(dec(++id, 'Ip', `2001:db8:${i.toString(16)}::1`), NOW)!);
  const v4Prefixes = [8, 12, 16, 20, 22, 23, 24, 25, 28, 30];
  const v6Prefixes = [32, 40, 48, 56, 60, 64];
  for (let i = 0; i < 20_000; i++) {
    if (i % 2) {
      const p = v4Prefixes[(i >> 1) % v4Prefixes.length]!;
      s.add(fromLapi(dec(++id, 'Range', `${100 + (i % 100)}.${(i >> 4) & 255}.${i & 255}.0/${p}`), NOW)!);
    } else {
      const p = v6Prefixes[(i >> 1) % v6Prefixes.length]!;
      s.add(fromLapi(dec(++id, 'Range', `2a0${i % 10}:${(i & 0xffff).toString(16)}::/${p}`), NOW)!);
    }
  }
  assert.equal(s.size, 100_000);
  const probes: string[] = [];
  for (let i = 0; i < 100_000; i++) probes.push(i % 3 ? `${1 + (i % 200)}.${i & 255}.${(i >> 8) & 255}.${(i * 7) & 255}` : `2a0${i % 10}:${(i & 0xffff).toString(16)}::${i.toString(16)}`);
  for (const ip of probes.slice(0, 20_000)) s.match(ip, NOW); // warm up the JIT
  let hits = 0;
  const started = process.hrtime.bigint();
  for (const ip of probes) if (s.match(ip, NOW)) hits++;
  const ns = Number(process.hrtime.bigint() - started) / probes.length;
  console.log(`# 100,000 decisions (${JSON.stringify(s.counts())}): ${(ns / 1000).toFixed(2)} µs per lookup over ${probes.length} lookups (${hits} hits)`);
  assert.ok(hits > 0);
  assert.ok(ns < 20_000, `a lookup takes ${(ns / 1000).toFixed(1)} µs (budget 20 µs)`);
  assert.equal(s.match('11.0.5.1', NOW)?.scope, 'ip');
  assert.equal(s.match('2001:db8:ff::1', NOW)?.scope, 'ip');
});
