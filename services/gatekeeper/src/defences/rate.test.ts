import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { isIP } from 'node:net';
import { clientKey, normalizeIp } from '@argos/shared/net';
import { hostDefaults, type Host } from '@argos/shared/repos/hosts';
import { DEFAULT_MAX_BUCKETS, RateBuckets, clientBits, describeLimit, limitFor, type RateLimit } from './rate.ts';

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


const v4 = (n: number): string => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const v6 = (n: number): string => `2001:db8:${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}::1`;

function gcNow(): (() => void) | null {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (() => void) | undefined;
  return gc ?? null;
}

test('rate: the table is allocated up front: max rounds up to sets of 8, 20 bytes a slot', () => {
  const d = new RateBuckets();
  assert.equal(d.max, DEFAULT_MAX_BUCKETS);
  assert.equal(d.bytes, DEFAULT_MAX_BUCKETS * 20 + 12 * 256 * 4, '5 MiB of slots + 12 KiB of hash tables');
  assert.equal(new RateBuckets({ max: 10 }).max, 16);
  assert.equal(new RateBuckets({ max: 1 }).max, 8);
  assert.equal(new RateBuckets({ max: 17 }).max, 32);
  assert.equal(new RateBuckets({ max: 1 << 20 }).max, 1 << 20);
});

test('rate: 1,000,000 distinct addresses (IPv4 and IPv6), all in debt: memory does not move, at most max buckets', () => {
  const c = clock();
  const b = new RateBuckets({ now: c.now });
  const l: RateLimit = { limit: 1, windowS: 3600, burst: 1 }; // every bucket stays in debt: the worst case for the table
  const bytes = b.bytes;
  b.take('app', '192.0.2.1', l); // the host gets its number, the code is compiled
  const gc = gcNow();
  gc?.();
  const before = process.memoryUsage();
  let heapAtHalf = 0;
  let refused = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < 1_000_000; i++) {
    if (!b.take('app', i % 2 ? v4(0x0a000000 + i) : v6(i), l).ok) refused++;
    if (i === 500_000) {
      gc?.();
      heapAtHalf = process.memoryUsage().heapUsed;
    }
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  gc?.();
  const after = process.memoryUsage();
  const mb = (n: number) => (n / 1048576).toFixed(2);
  console.log(
    `# 1,000,000 addresses: ${ms.toFixed(0)} ms (${((1e6 / ms) * 1000).toFixed(0)} takes/s, including building the address strings); ` +
      `${b.size} buckets in debt of ${b.max} slots (${mb(b.bytes)} MiB); heap delta ${mb(after.heapUsed - before.heapUsed)} MB ` +
      `(at 500k ${mb(heapAtHalf - before.heapUsed)} MB), array buffers delta ${mb(after.arrayBuffers - before.arrayBuffers)} MB${gc ? '' : ' (no gc available: approximate)'}`,
  );
  assert.equal(refused, 0, 'a first request is never refused: eviction forgives, never blocks');
  assert.ok(b.size <= b.max && b.size >= b.max - 64, `the table is full of buckets in debt (${b.size}), and holds no more`);
  assert.equal(b.bytes, bytes, 'the table did not grow');
  assert.ok(after.arrayBuffers - before.arrayBuffers < 1048576, 'no typed array was allocated');
  if (gc) {
    assert.ok(after.heapUsed - before.heapUsed < 4 * 1048576, `heap growth ${mb(after.heapUsed - before.heapUsed)} MB: nothing kept per client`);
    assert.ok(after.heapUsed - heapAtHalf < 2 * 1048576, `no growth between 500k and 1M addresses (${mb(after.heapUsed - heapAtHalf)} MB)`);
  }
  // The first clients were pushed out by later ones in their sets (forgiven); the last one is still counted.
  assert.equal(b.take('app', v6(0), l).ok, true, 'evicted client is forgiven');
  assert.equal(b.take('app', v4(0x0a000000 + 999_999), l).ok, false, 'the most recent client is still counted');
});

test('rate: size counts the buckets in debt now (the benchmark flood: one request each at 20/s keeps ~400 in debt)', () => {
  const c = clock();
  const b = new RateBuckets({ now: c.now });
  const l: RateLimit = { limit: 20, windowS: 1, burst: 20 };
  let most = 0;
  for (let i = 0; i < 200_000; i++) {
    assert.equal(b.take('flood', i % 2 ? v4(0x0a000000 + i) : v6(i), l).ok, true);
    c.advance(0.125); // 8,000 requests/s
    if (i % 10_000 === 9_999) most = Math.max(most, b.size);
  }
  assert.ok(most >= 395 && most <= 401, `50 ms × 8,000/s = 400 in debt, got ${most}`);
  c.advance(50);
  assert.equal(b.size, 0, 'all expired: nothing carries information any more');
});

test('rate: a client in debt is not forgotten while a flood of one-shot addresses passes through its set', () => {
  // A table of one set: every flood address competes with the victim for the same 8 slots.
  const c = clock();
  const b = new RateBuckets({ max: 8, now: c.now });
  assert.equal(b.max, 8);
  const slow: RateLimit = { limit: 5, windowS: 60, burst: 5 }; // one token every 12 s
  for (let i = 0; i < 5; i++) assert.equal(b.take('app', '198.51.100.7', slow).ok, true);
  assert.deepEqual(b.take('app', '198.51.100.7', slow), { ok: false, retryAfterS: 12 });
  // 1. The benchmark's flood: one request each at 20/s, in debt for 50 ms, then expired.
  const fast: RateLimit = { limit: 20, windowS: 1, burst: 20 };
  for (let i = 0; i < 100_000; i++) {
    assert.equal(b.take('app', i % 2 ? v4(0x0b000000 + i) : v6(i), fast).ok, true);
    c.advance(0.05);
  }
  assert.deepEqual(b.take('app', '198.51.100.7', slow), { ok: false, retryAfterS: 7 }, 'still counted after 100,000 addresses');
  // 2. One request each under the victim's own limit: in debt for 12 s, but by less than the victim.
  for (let i = 0; i < 100_000; i++) {
    assert.equal(b.take('app', i % 2 ? v4(0x0c000000 + i) : v6(0x100000 + i), slow).ok, true);
    c.advance(0.01);
  }
  assert.deepEqual(b.take('app', '198.51.100.7', slow), { ok: false, retryAfterS: 6 }, 'still counted after 100,000 more');
  assert.equal(b.size, 8);
});

test('rate: 1,000 rate-limited clients stay counted through a flood of 500,000 one-shot addresses (default table)', () => {
  const c = clock();
  const b = new RateBuckets({ now: c.now });
  const slow: RateLimit = { limit: 5, windowS: 60, burst: 5 };
  const fast: RateLimit = { limit: 20, windowS: 1, burst: 20 };
  const victims = Array.from({ length: 1000 }, (_, i) => (i % 2 ? v4(0xc6336400 + i) : `2001:db8:ffff:${i.toString(16)}::7`));
  for (const ip of victims) for (let i = 0; i < 5; i++) b.take('app', ip, slow);
  for (let i = 0; i < 500_000; i++) {
    b.take('app', i % 2 ? v4(0x0a000000 + i) : v6(i), fast);
    c.advance(0.02);
  }
  const forgotten = victims.filter((ip) => b.take('app', ip, slow).ok).length;
  assert.equal(forgotten, 0, `${forgotten} rate-limited clients were reset by the flood`);
});

test('rate: only buckets deeper in debt push a client out, and that forgives it; a new client is never refused', () => {
  const c = clock();
  const b = new RateBuckets({ max: 8, now: c.now }); // one set of 8
  const l: RateLimit = { limit: 5, windowS: 60, burst: 5 };
  const victim = '192.0.2.50';
  const deep = (a: number) => `203.0.113.${a}`;
  b.take('app', victim, l);
  b.take('app', victim, l); // 3 tokens left
  for (let a = 1; a <= 7; a++) for (let i = 0; i < 5; i++) assert.equal(b.take('app', deep(a), l).ok, true);
  assert.equal(b.peek('app', victim, l).ok, true);
  assert.equal(b.peek('app', deep(1), l).ok, false, 'the 8 slots hold 8 clients: nothing evicted yet');
  // An eighth deep client takes the slot of the bucket closest to full (the victim's): it is not refused, and the
  // victim is forgiven, a full bucket again.
  for (let i = 0; i < 5; i++) assert.equal(b.take('app', deep(8), l).ok, true, 'a new client is never refused');
  let ok = 0;
  while (b.take('app', victim, l).ok) ok++;
  assert.equal(ok, 5, 'forgotten = a full bucket');
  // The victim's new bucket then pushed out the shallowest of the others: all as deep, the first found.
  const kept = [1, 2, 3, 4, 5, 6, 7, 8].filter((a) => !b.peek('app', deep(a), l).ok).length;
  assert.equal(kept, 7);
});

test('rate: two clients never share a bucket: 200,000 clients of one host, IPv4 and IPv6 /64s with the same bits', () => {
  const c = clock();
  const b = new RateBuckets({ max: 1 << 20, now: c.now });
  const l: RateLimit = { limit: 1, windowS: 3600, burst: 1 };
  const clients: string[] = [];
  for (let i = 0; i < 66_667; i++) {
    const v = 0x0a000000 + i;
    const hi = (v >>> 16).toString(16);
    const lo = (v & 0xffff).toString(16);
    // 10.x.y.z, the /64 whose first 32 bits are the same number, and a /64 differing from it in bit 0 only.
    clients.push(v4(v), `${hi}:${lo}::1`, `${hi}:${lo}:0:1::`);
  }
  assert.equal(new Set(clients).size, clients.length);
  const drained = clients.filter((ip) => !b.take('app', ip, l).ok);
  assert.deepEqual(drained.slice(0, 5), [], `${drained.length} clients found their bucket emptied by another client`);
  const counted = clients.filter((ip) => !b.take('app', ip, l).ok).length;
  assert.ok(counted >= clients.length - 100, `each client's second request meets its own empty bucket (${clients.length - counted} forgotten)`);
});

test('rate: hosts are separate namespaces; more host keys than numbers clears the table (forgives, never blocks)', () => {
  const c = clock();
  const b = new RateBuckets({ max: 1 << 18, now: c.now });
  const l: RateLimit = { limit: 1, windowS: 3600, burst: 1 };
  for (let h = 0; h < 1000; h++) assert.equal(b.take(`h${h}.example.com`, '192.0.2.1', l).ok, true, `host ${h}`);
  for (let h = 0; h < 1000; h++) assert.equal(b.take(`h${h}.example.com`, '192.0.2.1', l).ok, false, `host ${h}`);
  assert.equal(b.take('*', '192.0.2.1', l).ok, true, 'unknown hosts (*) are a namespace of their own');
  assert.equal(b.peek('never.example.com', '192.0.2.1', l).ok, true);

  const big = new RateBuckets({ max: 1 << 20, now: c.now });
  assert.equal(big.take('first', '198.51.100.1', l).ok, true);
  const brief: RateLimit = { limit: 1000, windowS: 1, burst: 1 };
  for (let h = 1; h < 1 << 16; h++) big.take(`h${h}`, '198.51.100.1', brief);
  assert.equal(big.take('first', '198.51.100.1', l).ok, false, 'still counted with 65,536 host keys');
  assert.equal(big.take('late', '198.51.100.1', l).ok, true, 'the 65,537th host key starts a new table: its number is not the old one');
  assert.equal(big.take('first', '198.51.100.1', l).ok, true, 'forgotten with the old table');
});

test('rate: a client is what clientKey says: the IPv4 address, the IPv6 /64 whatever the spelling, else the string', () => {
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) % n) | 0;
  };
  const HEX = '0123456789abcdefABCDEF';
  const samples = [
    '0.0.0.0', '255.255.255.255', '1.2.3.4', '01.2.3.4', '1.2.3.04', '256.1.1.1', '1.2.3', '1.2.3.4.5', ' 1.2.3.4', '1..2.3', '',
    '::', '::1', '1::', '::ffff:1.2.3.4', '::ffff:0102:0304', '64:ff9b::192.0.2.1', 'fe80::1%eth0', 'fe80::1%1', ':::',
    '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8::', '1::2:3:4:5:6:7:8', '1:2:3:4::5:6:7:8',
    '1:2:3:4:5:6:7:8:9', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:', '1::2::3', '00000::1', '0001:0db8::1', '2001:DB8::1', 'unknown', 'g::1',
  ];
  // Addresses from 60 /64s, each written many ways.
  for (let i = 0; i < 20_000; i++) {
    const g = Array.from({ length: 8 }, (_, j) => (j < 4 ? [0x2001, 0xdb8, rnd(3), rnd(20)][j]! : rnd(4) ? 0 : rnd(65536)));
    const full = g.map((x) => x.toString(16)).join(':');
    const form = rnd(6);
    if (form === 0) samples.push(normalizeIp(full)!);
    else if (form === 1) samples.push(g.map((x) => x.toString(16).padStart(4, '0')).join(':').toUpperCase());
    else if (form === 2) samples.push(`${g.slice(0, 6).map((x) => x.toString(16)).join(':')}:${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`);
    else if (form === 3) samples.push(`${normalizeIp(full)}%eth${rnd(3)}`);
    else if (form === 4) samples.push(full);
    else samples.push(v4(rnd(4) ? 0xc0000200 + rnd(256) : (rnd(65536) << 16) | rnd(65536)));
  }
  // Strings in the IPv6 alphabet, most of them not addresses.
  for (let i = 0; i < 100_000; i++) {
    const parts = Array.from({ length: rnd(10) }, () => Array.from({ length: rnd(6) }, () => HEX[rnd(HEX.length)]).join(''));
    let s = parts.join(':');
    if (rnd(2)) {
      const at = rnd(parts.length + 1);
      s = `${parts.slice(0, at).join(':')}::${parts.slice(at).join(':')}`;
    }
    if (rnd(10) === 0) s = `:${s}`;
    if (rnd(10) === 0) s = `${s}:`;
    if (rnd(10) === 0) s = `${s}.1.2.3`;
    samples.push(s);
  }
  const byKey = new Map<string, string>();
  const byBits = new Map<string, string>();
  let v6count = 0;
  for (const s of samples) {
    const key = clientKey(s);
    const bits = clientBits(s);
    if (bits === null) {
      assert.notEqual(isIP(s), 6, `${s} is an IPv6 address`);
      assert.equal(key, s);
      continue;
    }
    if (bits.startsWith('0:')) assert.equal(isIP(s), 4, `${s} is taken for IPv4`);
    else {
      assert.equal(isIP(s), 6, `${s} is taken for IPv6`);
      v6count++;
    }
    assert.equal(byKey.get(key) ?? bits, bits, `${s}: clientKey ${key} has other bits than another spelling`);
    assert.equal(byBits.get(bits) ?? key, key, `${s}: bits ${bits} shared with another client`);
    byKey.set(key, bits);
    byBits.set(bits, key);
  }
  assert.ok(v6count > 20_000 && byBits.size > 1000, `the samples cover enough addresses (${v6count} IPv6, ${byBits.size} clients)`);
});

test('rate: clients that are not IP addresses are counted by their string; reusing their numbers forgets their buckets', () => {
  const c = clock();
  const b = new RateBuckets({ max: 1 << 16, now: c.now });
  const l: RateLimit = { limit: 1, windowS: 3600, burst: 1 };
  assert.equal(b.peek('app', 'unknown', l).ok, true);
  assert.equal(b.take('app', 'unknown', l).ok, true);
  assert.equal(b.take('app', 'unknown', l).ok, false);
  assert.equal(b.take('app', 'unknown2', l).ok, true, 'another string, another client');
  // 4,096 numbers: the 4,097th string starts over, and the buckets that carried the old numbers are forgotten first.
  let refused = 0;
  for (let i = 0; i < 5000; i++) if (!b.take('app', `not-an-ip-${i}`, l).ok) refused++;
  assert.equal(refused, 0, 'a reused number never carries another client’s debt');
  assert.equal(b.take('app', 'not-an-ip-4999', l).ok, false, 'counted after the reuse');
  assert.equal(b.take('app', '192.0.2.1', l).ok, true);
  assert.equal(b.take('app', '192.0.2.1', l).ok, false, 'addresses are not touched by the reuse');
});
