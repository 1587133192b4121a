import { test } from 'node:test';
import assert from 'node:assert/strict';
import { safeReturnUrl } from './return-url.ts';

const published = new Set(['app.example.com', 'xn--bcher-kva.example']);
const https = { portal: new URL('https://auth.example.com'), isKnownHost: (h: string) => published.has(h) };
const http = { portal: new URL('http://auth.example.com'), isKnownHost: (h: string) => published.has(h) };

test('when rd points at a published host or the portal, then it is kept', () => {
  assert.equal(safeReturnUrl('https://app.example.com/page?x=1', https), 'https://app.example.com/page?x=1');
  assert.equal(safeReturnUrl('https://APP.example.com./a', https), 'https://app.example.com./a');
  assert.equal(safeReturnUrl('https://auth.example.com/', https), 'https://auth.example.com/');
  assert.equal(safeReturnUrl('http://app.example.com:8081/x', http), 'http://app.example.com:8081/x');
});

test('open-redirect forms are refused (fall back to the portal home)', () => {
  const attacks = [
    'https://evil.example/',
    '//evil.example/',
    '/\\evil.example',
    '\\\\evil.example',
    'https:evil.example',
    'https:/evil.example',
    'https://app.example.com@evil.example/',
    'https://user:pw@app.example.com/',
    'https://evil.example\\@app.example.com/',
    'https://evil.example%2F@app.example.com/',
    'https://app.example.com%2F.evil.example/',
    'https://app.example.com%5C.evil.example/',
    'https://app.example.com.evil.example/',
    'https://evil.example/?https://app.example.com',
    ' https://app.example.com/',
    'https://app.example.com/\n',
    'javascript://app.example.com/%0aalert(1)',
    'data:text/html,x',
    'ftp://app.example.com/',
    'http://app.example.com/',
    'https://app.example.com\t.evil/',
    'https://[::1]/',
    '',
    'x'.repeat(5000),
  ];
  for (const a of attacks) assert.equal(safeReturnUrl(a, https), null, JSON.stringify(a));
  assert.equal(safeReturnUrl(['https://app.example.com/'], https), null);
  assert.equal(safeReturnUrl(undefined, https), null);
});
