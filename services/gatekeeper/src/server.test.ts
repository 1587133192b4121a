import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { forwardHeaders } from './server.ts';

const NAMES = ['host', 'cookie', 'authorization', 'user-agent', 'accept', 'upgrade', 'x-requested-with', 'sec-fetch-mode', 'sec-fetch-dest', 'x-forwarded-method', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-uri', 'x-forwarded-for', 'x-argos-portal'];

test('forwardHeaders reads what req.headers would, repeats included (a smuggled second X-Forwarded-Uri or Authorization gets no say)', async () => {
  const seen: { raw: string[]; headers: http.IncomingHttpHeaders }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ raw: req.rawHeaders, headers: req.headers });
    res.writeHead(204).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const requests = [
    ['Host: app.example.com', 'X-Forwarded-Uri: /public', 'X-Forwarded-Uri: /admin', 'X-Forwarded-For: 203.0.113.9', 'x-forwarded-for: 198.51.100.1'],
    ['Host: a.example.com', 'HOST: b.example.com', 'Authorization: Bearer first', 'authorization: Bearer second', 'User-Agent: one', 'User-Agent: two'],
    ['Host: a', 'Cookie: argos_session=AAA', 'cookie: other=1', 'COOKIE: argos_session=BBB', 'Accept: text/html', 'Accept: application/json'],
    ['Host: a', 'Sec-Fetch-Mode: navigate', 'Sec-Fetch-Dest: document', 'X-Requested-With: x', 'Upgrade: websocket', 'X-Argos-Portal: 1', 'X-Unrelated: y'],
    ['Host: a', 'X-Forwarded-Method: GET', 'X-Forwarded-Method: DELETE', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: app.example.com', 'X-Forwarded-Host: evil.example.com'],
  ];
  try {
    for (const lines of requests) {
      const socket = net.connect(port, '127.0.0.1');
      socket.end(`GET /verify HTTP/1.1\r\n${lines.join('\r\n')}\r\nConnection: close\r\n\r\n`);
      socket.resume();
      await once(socket, 'close');
    }
  } finally {
    server.close();
  }
  assert.equal(seen.length, requests.length);
  for (const { raw, headers } of seen) {
    const lean = forwardHeaders(raw);
    for (const name of NAMES) assert.deepEqual(lean[name], headers[name], `${name} in ${raw.join('|')}`);
    assert.equal(lean['x-unrelated'], undefined, 'headers /verify does not read are not copied');
  }
  // The attacks, spelled out: a repeated X-Forwarded-Uri is not one clean path; the first Authorization wins.
  assert.equal(forwardHeaders(seen[0]!.raw)['x-forwarded-uri'], '/public, /admin');
  assert.equal(forwardHeaders(seen[1]!.raw).authorization, 'Bearer first');
});
