import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientKey, inAnyCidr, normalizeIp, parseCidr } from './net.ts';

test('normalizeIp: IPv4-mapped IPv6 becomes IPv4; IPv6 is canonical; garbage is null', () => {
  assert.equal(normalizeIp('::ffff:8.8.8.8'), '8.8.8.8');
  assert.equal(normalizeIp('::FFFF:7f00:1'), '127.0.0.1');
  assert.equal(normalizeIp('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(normalizeIp('[::1]'), '::1');
  assert.equal(normalizeIp('fe80::1%eth0'), 'fe80::1');
  assert.equal(normalizeIp('1.2.3'), null);
  assert.equal(normalizeIp('not-an-ip'), null);
});

test('CIDR matching across families', () => {
  const nets = ['10.0.0.0/8', '2001:db8::/32', '127.0.0.1'].map((c) => parseCidr(c)!);
  assert.ok(inAnyCidr(nets, '10.200.1.1'));
  assert.ok(inAnyCidr(nets, '2001:db8:ffff::1'));
  assert.ok(inAnyCidr(nets, '127.0.0.1'));
  assert.ok(!inAnyCidr(nets, '127.0.0.2'));
  assert.ok(!inAnyCidr(nets, '11.0.0.1'));
  assert.ok(!inAnyCidr(nets, '2001:db9::1'));
  assert.ok(inAnyCidr([parseCidr('0.0.0.0/0')!], '8.8.8.8'));
  assert.ok(!inAnyCidr([parseCidr('0.0.0.0/0')!], '2001:db8::1'), 'an IPv4 /0 does not cover IPv6');
  assert.equal(parseCidr('10.0.0.0/33'), null);
  assert.equal(parseCidr('10.0.0.0/8/8'), null);
  assert.equal(parseCidr('10.1.2.3/8')!.text, '10.1.2.3/8');
});

test('clientKey groups an IPv6 /64 into one client and keeps IPv4 addresses apart', () => {
  assert.equal(clientKey('2001:db8:1:2:aaaa::1'), clientKey('2001:db8:1:2:ffff:1:2:3'));
  assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'));
  assert.equal(clientKey('203.0.113.9'), '203.0.113.9');
});
