import { test } from 'node:test';
import assert from 'node:assert/strict';
import { respond } from './respond.ts';
import type { Target } from './target.ts';

const portal = new URL('https://auth.example.com');
const t = (p: Partial<Target> = {}): Target => ({
  requestId: 'r', method: 'GET', proto: 'https', host: 'app.example.com', authority: 'app.example.com', path: '/a', query: 'b=1', rawUri: '/a?b=1',
  clientIp: '203.0.113.9', clientKind: 'navigation', topLevel: true, sessionToken: null, authorization: null, userAgent: null, ...p,
});

test('login for a browser GET → 302 to the portal with rd pointing back', () => {
  const a = respond({ kind: 'login', reason: 'x' }, t(), portal);
  assert.equal(a.status, 302);
  assert.equal(a.headers.Location, 'https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fa%3Fb%3D1');
});

test('login for a browser form POST → 303', () => {
  assert.equal(respond({ kind: 'login', reason: 'x' }, t({ method: 'POST' }), portal).status, 303);
});

test('login for XHR/API → 401 JSON with WWW-Authenticate, never a redirect', () => {
  const a = respond({ kind: 'login', reason: 'x' }, t({ clientKind: 'api', topLevel: false }), portal);
  assert.equal(a.status, 401);
  assert.match(a.headers['WWW-Authenticate']!, /Bearer/);
  assert.equal(JSON.parse(a.body).error, 'unauthorized');
  assert.equal(a.headers.Location, undefined);
});

test('allow → 200 with Remote-* only; nothing that identifies the session', () => {
  const a = respond({ kind: 'allow', reason: 'ok', identity: { userId: 1, username: 'alice', email: 'a@x', name: 'Alice', groups: ['a', 'b'], factors: 1, via: 'session', sessionId: 5 } }, t(), portal);
  assert.equal(a.status, 200);
  assert.deepEqual(a.headers, { 'Remote-User': 'alice', 'Remote-Email': 'a@x', 'Remote-Name': 'Alice', 'Remote-Groups': 'a,b' });
});

test('deny → 403 without the reason; rate limit → 429 with Retry-After', () => {
  const d = respond({ kind: 'deny', reason: 'geo_not_allowed' }, t({ clientKind: 'api' }), portal);
  assert.equal(d.status, 403);
  assert.doesNotMatch(d.body, /geo/);
  const r = respond({ kind: 'rate_limited', reason: 'rate_limited', retryAfterS: 12 }, t(), portal);
  assert.equal(r.status, 429);
  assert.equal(r.headers['Retry-After'], '12');
});
