/**
 * The client address the portal and the panel see (requestIp) must be the one /verify sees for the same request:
 * login regulation, the cookie-handoff binding and the audit all key on it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { parseCidr, type Cidr } from './net.ts';
import { requestIp } from './http.ts';

const loopback = [parseCidr('127.0.0.0/8')!, parseCidr('::1/128')!] as Cidr[];
const req = (peer: string, xff?: string) =>
  ({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;

test('when the peer is not a trusted proxy, then its own address counts and a forged X-Forwarded-For is ignored', () => {
  assert.equal(requestIp(req('203.0.113.9', '10.0.0.1'), loopback), '203.0.113.9');
});

test('when a trusted proxy forwards, then X-Forwarded-For is read right to left, skipping trusted hops', () => {
  assert.equal(requestIp(req('127.0.0.1', '198.51.100.7'), loopback), '198.51.100.7');
  assert.equal(requestIp(req('127.0.0.1', '6.6.6.6, 198.51.100.7, 127.0.0.2'), loopback), '198.51.100.7', 'a spoofed left-most entry is ignored');
  assert.equal(requestIp(req('::ffff:127.0.0.1', '::ffff:198.51.100.7'), loopback), '198.51.100.7');
  assert.equal(requestIp(req('127.0.0.1'), loopback), '127.0.0.1');
});

test('when every hop is a trusted address (a LAN or loopback client behind the proxy), then the client is the left-most hop, not the proxy', () => {
  // Counting the proxy instead would put every visitor's failed logins on one address: one person's typos would
  // ban everyone, and a handoff bound in the portal would never match the same browser at /verify.
  assert.equal(requestIp(req('127.0.0.1', '127.0.0.5'), loopback), '127.0.0.5');
  assert.equal(requestIp(req('127.0.0.1', '127.0.0.5, 127.0.0.1'), loopback), '127.0.0.5');
});
