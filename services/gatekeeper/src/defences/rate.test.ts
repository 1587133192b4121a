import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { hostDefaults, type Host } from '@argos/shared/repos/hosts';
import { RateBuckets, describeLimit, limitFor, type RateLimit } from './rate.ts';

const host = (patch: Partial<Host> = {}): Host => ({ ...hostDefaults('app.example.com', ['http://127.0.0.1:9']), id: 1, rules: [], createdAt: 0, updatedAt: 0, ...patch });

function clock(start = 1_800_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

test('rate: a burst up to the bucket size passes, the next request is refused with Retry-After until one token is back', () => {
  const c = clock();
  const b = new RateBuckets({ now: c.now });
  const l: RateLimit = { limit: 5, windowS: 60, burst: 5 }; // one token every 12 s
  for (let i = 0; i < 5; i++) assert.deepEqual(b.take('app', '203.0.113.9', l), { ok: true }, `request ${i + 1}`);
  assert.deepEqual(b.take('app', '203.0.113.9', l), { ok: false, retryAfterS: 12 });
  c.advance(4_500);
  assert.deepEqual(b.take('app', '203.0.113.9', l), { ok: false, retryAfterS: 8 }, 'ceil(7.5 s)');
  c.advance(7_499);
  assert.equal(b.take('app', '203.0.113.9', l).ok, false, 'one millisecond early is still refused');
  c.advance(1);
  assert.deepEqual(b.take('app', '203.0.113.9', l), { ok: true }, 'exactly one token back after 12 s');
  assert.equal(b.take('app', '203.0.113.9', l).ok, false, 'and only one');
});

test('rate: refused requests do not dig the hole deeper (an attacker hammering waits the same)', () => {
  const c = clock();
  const b = new RateBuckets({ now: c.now });
  const l: RateLimit = { limit: 1, windowS: 1, burst: 2 };
  b.take('h', '198.51.100.1', l);
  b.take('h', '198.51.100.1', l);
  for (let i = 0; i < 1000; i++) assert.equal(b.take('h', '198.51.100.1', l).ok, false);
  c.advance(1000);
  assert.equal(b.take('h', '198.51.100.1', l).ok, true);
});

test('rate: sustained rate equals limit/window; burst refills fully after idling', () => {
  const c = clock();
  const b = new RateBuckets({ now: c.now });
  const l: RateLimit = { limit: 10, windowS: 1, burst: 20 };
  let ok = 0;
  for (let ms = 0; ms < 10_000; ms += 10) {
    if (b.take('h', '192.0.2.1', l).ok) ok++;
    c.advance(10);
  }
  assert.ok(ok >= 10 * 10 + 20 - 1 && ok <= 10 * 10 + 20 + 1, `~120 in 10 s, got ${ok}`);
  c.advance(60_000);
  for (let i = 0; i < 20; i++) assert.equal(b.take('h', '192.0.2.1', l).ok, true);
  assert.equal(b.take('h', '192.0.2.1', l).ok, false);
});

test('rate: other clients, other hosts and the same client on IPv6 /64 are separate or shared as they should be', () => {
  const c = clock();
  const b = new RateBuckets({ now: c.now });
  const l: RateLimit = { limit: 1, windowS: 60, burst: 1 };
  assert.equal(b.take('app', '203.0.113.9', l).ok, true);
  assert.equal(b.take('app', '203.0.113.9', l).ok, false);
  assert.equal(b.take('app', '203.0.113.10', l).ok, true, 'another IPv4 client is unaffected');
  assert.equal(b.take('other', '203.0.113.9', l).ok, true, 'another host has its own bucket');
  assert.equal(b.take('app', '2001:db8:1:2::1', l).ok, true);
  assert.equal(b.take('app', '2001:db8:1:2:ffff:ffff:ffff:ffff', l).ok, false, 'rotating addresses inside one /64 does not escape the limit');
  assert.equal(b.take('app', '2001:db8:1:3::1', l).ok, true, 'the next /64 is another client');
});

test('rate: peek answers like take but consumes nothing', () => {
  const c = clock();
  const b = new RateBuckets({ now: c.now });
  const l: RateLimit = { limit: 2, windowS: 1, burst: 2 };
  for (let i = 0; i < 10; i++) assert.deepEqual(b.peek('h', '192.0.2.7', l), { ok: true });
  assert.equal(b.size, 0);
  b.take('h', '192.0.2.7', l);
  b.take('h', '192.0.2.7', l);
  assert.deepEqual(b.peek('h', '192.0.2.7', l), { ok: false, retryAfterS: 1 });
  assert.deepEqual(b.peek('h', '192.0.2.7', l), { ok: false, retryAfterS: 1 });
});

test('rate: when the operator raises a limit, a client emptied under the old one is judged by the new one', () => {
  const c = clock();
  const b = new RateBuckets({ now: c.now });
  const slow: RateLimit = { limit: 2, windowS: 60, burst: 2 };
  b.take('h', '192.0.2.9', slow);
  b.take('h', '192.0.2.9', slow);
  assert.deepEqual(b.take('h', '192.0.2.9', slow), { ok: false, retryAfterS: 30 });
  const fast: RateLimit = { limit: 50, windowS: 1, burst: 200 };
  assert.deepEqual(b.take('h', '192.0.2.9', fast), { ok: false, retryAfterS: 1 }, 'an empty bucket under the new limit, not 30 s of debt');
  c.advance(20);
  assert.deepEqual(b.take('h', '192.0.2.9', fast), { ok: true }, 'one token back after 1/50 s');
  assert.equal(b.take('h', '192.0.2.9', fast).ok, false);
});

test('rate: limitFor uses the host limit (burst = limit by default), else the global default, and off disables', () => {
  const settings = { 'rate.default_limit': '50/s', 'rate.default_burst': 200 };
  assert.deepEqual(limitFor(host({ rateLimit: 300, rateWindowS: 60 }), settings), { limit: 300, windowS: 60, burst: 300 });
  assert.deepEqual(limitFor(host({ rateLimit: 300, rateWindowS: 60, rateBurst: 20 }), settings), { limit: 300, windowS: 60, burst: 20 });
  assert.deepEqual(limitFor(host(), settings), { limit: 50, windowS: 1, burst: 200 });
  assert.deepEqual(limitFor(null, settings), { limit: 50, windowS: 1, burst: 200 }, 'unknown hosts get the default too');
  assert.equal(limitFor(host(), { 'rate.default_limit': 'off', 'rate.default_burst': 1 }), null);
  assert.equal(describeLimit({ limit: 300, windowS: 60, burst: 20 }), '300/min, burst 20');
});

function gcNow(): (() => void) | null {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (() => void) | undefined;
  return gc ?? null;
}

test('rate: 1,000,000 distinct addresses (IPv4 and IPv6) keep memory bounded: the LRU holds at most max buckets', () => {
  const MAX = 200_000;
  const c = clock();
  const b = new RateBuckets({ max: MAX, now: c.now });
  const l: RateLimit = { limit: 1, windowS: 3600, burst: 1 };
  const gc = gcNow();
  gc?.();
  const before = process.memoryUsage().heapUsed;
  let heapAtHalf = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < 1_000_000; i++) {
    const ip = i % 2 ? `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` : `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`;
    assert.equal(b.take('app', ip, l).ok, true);
    if (i === 500_000) {
      gc?.();
      heapAtHalf = process.memoryUsage().heapUsed;
    }
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  gc?.();
  const after = process.memoryUsage().heapUsed;
  assert.equal(b.size, MAX, 'never more than max buckets');
  const mb = (n: number) => (n / 1048576).toFixed(1);
  console.log(
    `# 1,000,000 addresses: ${ms.toFixed(0)} ms (${((1e6 / ms) * 1000).toFixed(0)} takes/s); ${b.size} buckets; heap delta ${mb(after - before)} MB ` +
      `(${((after - before) / MAX).toFixed(0)} bytes/bucket; at 500k addresses ${mb(heapAtHalf - before)} MB)${gc ? '' : ' (no gc available: approximate)'}`,
  );
  if (gc) {
    assert.ok(after - before < 64 * 1048576, `heap growth ${mb(after - before)} MB stays under 64 MB for ${MAX} buckets`);
    assert.ok(after - heapAtHalf < 16 * 1048576, `no growth between 500k and 1M addresses (${mb(after - heapAtHalf)} MB)`);
  }
  // Eviction forgives: the first client (long evicted) has a full bucket again; the most recent one is still limited.
  assert.equal(b.take('app', '2001:db8:0:0::1', l).ok, true, 'evicted client is forgiven');
  assert.equal(b.take('app', `10.15.66.63`, l).ok, false, 'a recent client is still counted');
});
