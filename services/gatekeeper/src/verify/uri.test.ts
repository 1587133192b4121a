import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeUri } from './uri.ts';

test('when a path carries dot segments, encoded dots or repeated slashes, then it is normalised before rules see it', () => {
  const cases: [string, string][] = [
    ['/', '/'],
    ['/app/page?x=1', '/app/page'],
    ['/api/health/../admin', '/api/admin'],
    ['/api/health/%2e%2e/admin', '/api/admin'],
    ['/api/health/%2E%2E/admin', '/api/admin'],
    ['/api//health///x', '/api/health/x'],
    ['/a/./b/', '/a/b/'],
    ['/a/b/.', '/a/b/'],
    ['/%61dmin', '/admin'],
    ['/a%2Fb', '/a%2Fb'],
    ['/a%2fb/..', '/'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/x%7e', '/x~'],
  ];
  for (const [raw, want] of cases) {
    const r = normalizeUri(raw);
    assert.ok(r.ok, `${raw} should parse`);
    assert.equal(r.path, want, raw);
  }
});

test('when %2F appears inside a segment, then it never becomes a separator; a dot segment hidden behind it is refused', () => {
  const r = normalizeUri('/files/a%2Fb.txt');
  assert.ok(r.ok);
  assert.equal(r.path, '/files/a%2Fb.txt');
  for (const attack of ['/api/health%2F..%2Fadmin', '/api/health/..%2Fadmin', '/api/health/..%5Cadmin', '/api/health/..;/admin', '/api/health/..;jsessionid=x/admin', '/api/health/.%2Fadmin']) {
    assert.equal(normalizeUri(attack).ok, false, attack);
  }
  assert.ok(normalizeUri('/a/b;v=1/c').ok, 'ordinary path parameters are fine');
  assert.ok(normalizeUri('/a/..b/c').ok, 'a name that merely starts with dots is fine');
});

test('when the URI is malformed, then it is refused, not guessed', () => {
  for (const raw of ['', 'relative', '/a b', '/a\tb', '/%zz', '/%4', '/a%00b', '/a%0d%0aSet-Cookie:x', '/..', '/a/../..', '/a\\..\\admin', '/a%5C..%5Cadmin', '/api/health/..%5cadmin', '/é', '/x\x7f', 'http://evil/']) {
    assert.equal(normalizeUri(raw).ok, false, JSON.stringify(raw));
  }
});

test('the query string is kept apart and never affects the path', () => {
  const r = normalizeUri('/a?next=/../../admin&x=%zz');
  assert.ok(r.ok);
  assert.equal(r.path, '/a');
  assert.equal(r.query, 'next=/../../admin&x=%zz');
});

test('normalizeUri: the fast path for plain paths answers exactly what the full pass answers', () => {
  // Random URIs over an alphabet that reaches every branch: separators, dots, escapes, params, query, fragment.
  const parts = ['/', '/', 'a', 'B', '.', '..', '%2F', '%2e', '%41', ';x', '?', '#', '&', '=', '~', '-', '\\', '%', '%zz'];
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let plain = 0;
  for (let i = 0; i < 20_000; i++) {
    let uri = rnd(10) ? '/' : '';
    const n = 1 + rnd(8);
    for (let j = 0; j < n; j++) uri += parts[rnd(parts.length)];
    const full = normalizeUri(uri, false);
    assert.deepEqual(normalizeUri(uri), full, uri);
    if (full.ok && full.path === uri.split('?')[0]) plain++;
  }
  assert.ok(plain > 1000, `the sample reaches the fast path (${plain} plain URIs)`);
});
