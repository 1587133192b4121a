import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Regulator, type Ban } from './regulation.ts';

const limits = () => ({ maxFailures: 5, windowS: 300, banTimeS: 900 });

test('when one client fails 5 times in the window, then it is banned before any further hashing, and other clients are not', () => {
  let now = 1_000_000;
  const bans: Ban[] = [];
  const r = new Regulator({ limits, now: () => now, onBan: (b) => bans.push(b) });
  for (let i = 0; i < 4; i++) assert.equal(r.fail('203.0.113.9', `user${i}`), null);
  assert.equal(r.blockedFor('203.0.113.9'), 0);
  assert.ok(r.fail('203.0.113.9', 'alice'));
  assert.equal(r.blockedFor('203.0.113.9'), 900);
  assert.equal(r.blockedFor('203.0.113.10'), 0);
  assert.equal(bans.length, 1);
  now += 901_000;
  assert.equal(r.blockedFor('203.0.113.9'), 0);
});

test('repeat offenders get doubling bans', () => {
  let now = 0;
  const r = new Regulator({ limits, now: () => now });
  for (let i = 0; i < 5; i++) r.fail('198.51.100.1');
  assert.equal(r.blockedFor('198.51.100.1'), 900);
  now += 901_000;
  for (let i = 0; i < 5; i++) r.fail('198.51.100.1');
  assert.equal(r.blockedFor('198.51.100.1'), 1800);
});

test('rotating IPv6 addresses inside one /64 share one bucket', () => {
  const r = new Regulator({ limits, now: () => 0 });
  for (let i = 1; i <= 5; i++) r.fail(`2001:db8:1:2::${i.toString(16)}`);
  assert.ok(r.blockedFor('2001:db8:1:2:ffff::1') > 0);
  assert.equal(r.blockedFor('2001:db8:1:3::1'), 0);
});

test('a targeted username is slowed down, not locked out everywhere', () => {
  const r = new Regulator({ limits, now: () => 0 });
  for (let i = 0; i < 30; i++) r.fail(`10.0.${i}.1`, 'alice');
  assert.ok(r.slowdownMs('alice') > 0);
  assert.equal(r.blockedFor('192.0.2.50', 'alice'), 0, 'a fresh client can still try');
});

test('memory stays bounded with 100,000 distinct attacking clients', () => {
  const r = new Regulator({ limits, now: () => 0, maxEntries: 10_000 });
  for (let i = 0; i < 100_000; i++) r.fail(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, `u${i}`);
  const s = r.size;
  assert.ok(s.clients <= 10_000 && s.pairs <= 10_000 && s.users <= 10_000, JSON.stringify(s));
});

test('persisted bans are restored after a restart', () => {
  const r = new Regulator({ limits, now: () => 1000 });
  r.restore([{ key: 'client:203.0.113.9', until: 61_000, strikes: 1, reason: 'x' }]);
  assert.equal(r.blockedFor('203.0.113.9'), 60);
});

test('a ban decided in another process (restored from the database) closes this process too, without shortening a longer local ban', () => {
  let now = 0;
  const r = new Regulator({ limits, now: () => now });
  r.restore([{ key: 'client:198.51.100.9', until: 120_000, strikes: 1, reason: 'portal' }]);
  assert.equal(r.blockedFor('198.51.100.9'), 120);
  for (let i = 0; i < 5; i++) r.fail('198.51.100.10');
  r.restore([{ key: 'client:198.51.100.10', until: 10_000, strikes: 1, reason: 'shorter' }]);
  assert.equal(r.blockedFor('198.51.100.10'), 900, 'the longer local ban stays');
  now = 121_000;
  assert.equal(r.blockedFor('198.51.100.9'), 0);
});

test('a ban lifted by the operator (gone from the database) is lifted in every process at the next sync', () => {
  const r = new Regulator({ limits, now: () => 0 });
  for (let i = 0; i < 5; i++) r.fail('203.0.113.44');
  assert.ok(r.blockedFor('203.0.113.44') > 0);
  r.syncBans([{ key: 'client:198.51.100.1', until: 60_000, strikes: 1, reason: 'other' }]);
  assert.equal(r.blockedFor('203.0.113.44'), 0);
  assert.ok(r.blockedFor('198.51.100.1') > 0);
});
