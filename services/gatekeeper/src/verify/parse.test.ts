import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr, type Cidr } from '@argos/shared/net';
import { classifyClient, clientIp, parseVerify } from './parse.ts';

const trusted = ['127.0.0.0/8', '::1/128', '172.18.0.0/16'].map((c) => parseCidr(c)!) as Cidr[];
const base = { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.com', 'x-forwarded-uri': '/', 'x-forwarded-for': '203.0.113.9' };

test('when the caller is not a trusted proxy, then it gets 403 whatever it sends', () => {
  for (const peer of ['198.51.100.7', '10.0.0.1', '::ffff:198.51.100.7', '2001:db8::1', 'garbage']) {
    const r = parseVerify(peer, base, trusted, 'id');
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.status, 403, peer);
  }
});

test('when a trusted proxy forwards, then IPv4-mapped peers count as IPv4', () => {
  const r = parseVerify('::ffff:127.0.0.1', base, trusted, 'id');
  assert.ok(r.ok);
});

test('client IP: X-Forwarded-For read right to left, trusted hops skipped, a spoofed left-most entry ignored', () => {
  assert.equal(clientIp('127.0.0.1', '1.2.3.4, 203.0.113.9', trusted), '203.0.113.9');
  assert.equal(clientIp('127.0.0.1', '1.2.3.4, 203.0.113.9, 172.18.0.5', trusted), '203.0.113.9');
  assert.equal(clientIp('127.0.0.1', '::ffff:203.0.113.9', trusted), '203.0.113.9');
  assert.equal(clientIp('127.0.0.1', '2001:DB8::0:1', trusted), '2001:db8::1');
  assert.equal(clientIp('127.0.0.1', undefined, trusted), '127.0.0.1');
  assert.equal(clientIp('127.0.0.1', '127.0.0.1', trusted), '127.0.0.1');
  assert.equal(clientIp('127.0.0.1', 'evil, 203.0.113.9', trusted), '203.0.113.9');
  assert.equal(clientIp('127.0.0.1', '203.0.113.9, not-an-ip', trusted), null);
});

test('every spelling of a host meets the same policy', () => {
  for (const h of ['APP.Example.COM', 'app.example.com.', 'app.example.com:8443', 'App.Example.Com.:443']) {
    const r = parseVerify('127.0.0.1', { ...base, 'x-forwarded-host': h }, trusted, 'id');
    assert.ok(r.ok, h);
    assert.equal(r.target.host, 'app.example.com');
  }
  const idn = parseVerify('127.0.0.1', { ...base, 'x-forwarded-host': 'bücher.example' }, trusted, 'id');
  assert.ok(idn.ok);
  assert.equal(idn.target.host, 'xn--bcher-kva.example');
});

test('when a forwarded header is missing or malformed, then the answer is 400 naming it', () => {
  const bad: [Record<string, string>, string][] = [
    [{ 'x-forwarded-method': 'G E T' }, 'X-Forwarded-Method'],
    [{ 'x-forwarded-proto': 'gopher' }, 'X-Forwarded-Proto'],
    [{ 'x-forwarded-host': 'a b.example' }, 'X-Forwarded-Host'],
    [{ 'x-forwarded-host': 'evil.com/x' }, 'X-Forwarded-Host'],
    [{ 'x-forwarded-uri': '/%zz' }, 'X-Forwarded-Uri'],
    [{ 'x-forwarded-uri': '/../etc/passwd' }, 'X-Forwarded-Uri'],
    [{ 'x-forwarded-for': '1.2.3.4, bogus' }, 'X-Forwarded-For'],
  ];
  for (const [patch, header] of bad) {
    const r = parseVerify('127.0.0.1', { ...base, ...patch }, trusted, 'id');
    assert.equal(r.ok, false, header);
    assert.ok(!r.ok && r.status === 400 && r.detail.startsWith(header), `${header}: ${!r.ok && r.detail}`);
  }
  const noUri: Record<string, string> = { ...base };
  delete noUri['x-forwarded-uri'];
  assert.equal(parseVerify('127.0.0.1', noUri, trusted, 'id').ok, false);
});

test('client classification: only top-level navigations are redirected; XHR, API, WebSocket and preflight get 401', () => {
  const t: [string, Record<string, string>, string, boolean][] = [
    ['GET', { accept: 'text/html,application/xhtml+xml' }, 'navigation', true],
    ['GET', { 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', accept: '*/*' }, 'navigation', true],
    ['POST', { 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' }, 'navigation', true],
    ['GET', { 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'iframe' }, 'api', false],
    ['GET', { 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty', accept: 'text/html' }, 'api', false],
    ['GET', { accept: 'text/html', 'x-requested-with': 'XMLHttpRequest' }, 'api', false],
    ['GET', { accept: 'application/json' }, 'api', false],
    ['GET', { accept: 'text/html', authorization: 'Bearer x' }, 'api', false],
    ['GET', { accept: 'text/html', upgrade: 'websocket', connection: 'Upgrade' }, 'api', false],
    ['OPTIONS', { accept: 'text/html' }, 'api', false],
    ['GET', {}, 'api', false],
  ];
  for (const [m, h, kind, top] of t) {
    const c = classifyClient(m, h);
    assert.deepEqual([c.kind, c.topLevel], [kind, top], `${m} ${JSON.stringify(h)}`);
  }
});

test('a duplicated session cookie (cookie tossing) counts as no cookie', () => {
  const tok = 'A'.repeat(43);
  const one = parseVerify('127.0.0.1', { ...base, cookie: `a=1; argos_session=${tok}; b=2` }, trusted, 'id');
  assert.ok(one.ok && one.target.sessionToken === tok);
  const two = parseVerify('127.0.0.1', { ...base, cookie: `argos_session=${tok}; argos_session=${'B'.repeat(43)}` }, trusted, 'id');
  assert.ok(two.ok && two.target.sessionToken === null);
  const junk = parseVerify('127.0.0.1', { ...base, cookie: 'argos_session=<script>' }, trusted, 'id');
  assert.ok(junk.ok && junk.target.sessionToken === null);
});
