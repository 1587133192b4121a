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

test('when %2F appears inside a segment, then it never becomes a separator (cannot climb with ..)', () => {
  const r = normalizeUri('/api/health%2F..%2Fadmin');
  assert.ok(r.ok);
  assert.equal(r.path, '/api/health%2F..%2Fadmin');
});

test('when the URI is malformed, then it is refused, not guessed', () => {
  for (const raw of ['', 'relative', '/a b', '/a\tb', '/%zz', '/%4', '/a%00b', '/a%0d%0aSet-Cookie:x', '/..', '/a/../..', '/a\\..\\admin', '/é', '/x\x7f', 'http://evil/']) {
    assert.equal(normalizeUri(raw).ok, false, JSON.stringify(raw));
  }
});

test('the query string is kept apart and never affects the path', () => {
  const r = normalizeUri('/a?next=/../../admin&x=%zz');
  assert.ok(r.ok);
  assert.equal(r.path, '/a');
  assert.equal(r.query, 'next=/../../admin&x=%zz');
});
