/**
 * Integration: real Caddy (started by startCaddy) with its admin API on a unix socket, a fake gatekeeper and a fake
 * upstream, all on 127.0.0.1. Checks applyConfig/drift against the real admin API, and that the generated config
 * behaves on the installed Caddy as designed (identity headers, cookie stripping, portal paths, catch-all).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buildCaddyConfig } from './config.ts';
import { applyConfig, CaddyAdminClient, CaddyLoadError, drift } from './admin.ts';
import { findCaddy, startCaddy, type CaddyProcess } from './process.ts';
import type { Host } from '../repos/hosts.ts';

const LOOPBACK = '127.0.0.1';

/** A free loopback TCP port (listen on 0, read it, close). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, LOOPBACK, resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function listen(handler: http.RequestListener): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function get(port: number, host: string, urlPath: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: LOOPBACK, port, path: urlPath, method: 'GET', headers: { Host: host, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const host = (domain: string, upstream: string): Host => ({
  id: 1,
  domain,
  upstreams: [upstream],
  upstreamTlsVerify: true,
  policy: 'one_factor',
  tlsMode: 'off',
  enabled: true,
  allowedUsers: [],
  allowedGroups: [],
  allowBasic: false,
  allowTokens: false,
  geoMode: 'inherit',
  geoCountries: [],
  geoLan: 'allow',
  geoUnknown: 'deny',
  rateLimit: null,
  rateWindowS: null,
  rateBurst: null,
  rules: [],
  createdAt: 0,
  updatedAt: 0,
});

const GOOD_SESSION = 'good-session-token-0123456789';

let dir: string;
let caddy: CaddyProcess | null = null;
let adminListen: string;
let httpPort: number;
let gatekeeper: http.Server;
let upstream: http.Server;
let config: object;
const verifyRequests: http.IncomingHttpHeaders[] = [];

before(async () => {
  assert.ok(findCaddy(), 'caddy is not installed: run `npm test` as root to install it (apt-get install -y caddy), or put Caddy 2.6+ on PATH');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-caddy-admin-'));
  fs.chmodSync(dir, 0o700);
  adminListen = `unix/${path.join(dir, 'run', 'caddy-admin.sock')}`;

  // Fake gatekeeper: /verify decides by forwarded host; everything else is "the portal".
  const gk = await listen((req, res) => {
    const p = (req.url ?? '/').split('?')[0];
    if (p === '/verify' && !req.headers['x-argos-portal']) {
      verifyRequests.push(req.headers);
      const fwdHost = String(req.headers['x-forwarded-host'] ?? '').replace(/:\d+$/, '');
      if (fwdHost === 'app.test') {
        if ((req.headers.cookie ?? '').includes(`argos_session=${GOOD_SESSION}`)) {
          res.setHeader('Remote-User', 'alice');
          res.setHeader('Remote-Groups', 'admins,media');
          res.setHeader('Remote-Name', ''); // empty: must reach the upstream as absent
          res.writeHead(200).end();
        } else {
          res.writeHead(302, { Location: 'http://auth.test/login' }).end();
        }
        return;
      }
      if (fwdHost === 'auth.test') return void res.writeHead(200).end();
      return void res.writeHead(403, { 'Content-Type': 'text/plain' }).end('gatekeeper: unknown host');
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ portal: true, url: req.url, headers: req.headers }));
  });
  gatekeeper = gk.server;
  const up = await listen((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ upstream: true, url: req.url, headers: req.headers }));
  });
  upstream = up.server;

  httpPort = await freePort();
  const httpsPort = await freePort();
  config = buildCaddyConfig({
    hosts: [host('app.test', `http://${LOOPBACK}:${up.port}`)],
    portal: new URL(`http://auth.test:${httpPort}`),
    panel: null,
    gatekeeperDial: `${LOOPBACK}:${gk.port}`,
    httpPort,
    httpsPort,
    admin: { listen: adminListen },
    accessLog: null,
    bindHost: LOOPBACK,
  });
  // Boot with only the admin API; the real config arrives through applyConfig like in production.
  caddy = await startCaddy({
    config: { admin: { listen: adminListen, origins: ['', 'localhost'], config: { persist: false } } },
    adminListen,
    dataDir: dir,
  });
});

after(async () => {
  await caddy?.stop();
  await new Promise((r) => gatekeeper?.close(r));
  await new Promise((r) => upstream?.close(r));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('startCaddy: config file 0600, state under <dataDir>/caddy, admin socket answers', async () => {
  assert.ok(caddy);
  assert.equal(fs.statSync(caddy.configPath).mode & 0o777, 0o600);
  assert.ok(caddy.configPath.startsWith(path.join(dir, 'caddy')));
  assert.ok(await caddy.admin.reachable());
  const { config: running, etag } = await caddy.admin.getConfig();
  assert.ok(running);
  assert.match(etag ?? '', /^"\/config\/ [0-9a-f]+"$/);
});

test('applyConfig: loads the generated config and reads back the same hash; drift reports in sync', async () => {
  const r = await applyConfig(caddy!.admin, config);
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.deepStrictEqual(await drift(caddy!.admin, config), { inSync: true, reachable: true });
});

test('generated config on real Caddy: identity headers only from the gatekeeper, session cookie stripped', async () => {
  const a = await get(httpPort, 'app.test', '/page?x=1', {
    Cookie: `theme=dark; argos_session=${GOOD_SESSION}; lang=en`,
    'Remote-User': 'mallory',
    'Remote-Email': 'mallory@evil.test',
    'Remote-Name': 'Mallory',
    'X-Argos-Portal': '1',
  });
  assert.equal(a.status, 200, a.body);
  const seen = JSON.parse(a.body);
  assert.equal(seen.upstream, true);
  assert.equal(seen.url, '/page?x=1');
  assert.equal(seen.headers['remote-user'], 'alice');
  assert.equal(seen.headers['remote-groups'], 'admins,media');
  assert.equal(seen.headers['remote-email'], undefined, 'spoofed header not sent by the gatekeeper must be gone');
  assert.equal(seen.headers['remote-name'], undefined, 'empty gatekeeper header must reach the upstream as absent');
  assert.equal(seen.headers.cookie, 'theme=dark; lang=en');
  const v = verifyRequests.at(-1)!;
  assert.equal(v['x-forwarded-uri'], '/page?x=1');
  assert.equal(v['x-forwarded-method'], 'GET');
  assert.equal(v['x-argos-portal'], undefined);

  const only = await get(httpPort, 'app.test', '/', { Cookie: `argos_session=${GOOD_SESSION}` });
  assert.equal(JSON.parse(only.body).headers.cookie ?? '', '');

  const anon = await get(httpPort, 'app.test', '/');
  assert.equal(anon.status, 302);
  assert.equal(anon.headers.location, 'http://auth.test/login');
});

test('generated config on real Caddy: the portal host reaches only portal paths, unknown hosts get 403', async () => {
  const login = await get(httpPort, 'auth.test', '/login?rd=x', { 'X-Forwarded-Method': 'POST' });
  assert.equal(login.status, 200);
  const seen = JSON.parse(login.body);
  assert.equal(seen.portal, true);
  assert.equal(seen.headers['x-argos-portal'], '1');
  assert.equal(seen.headers['x-forwarded-method'], undefined);
  assert.equal(seen.headers['x-forwarded-uri'], undefined);
  for (const p of ['/verify', '/metrics', '/healthz', '/verify?x=1', '//verify', '/static/../verify', '/static/%2e%2e/metrics', '/admin']) {
    const r = await get(httpPort, 'auth.test', p);
    assert.equal(r.status, 404, `${p} on the portal host must not be proxied (got ${r.status} ${r.body})`);
    assert.ok(!r.body.includes('"portal":true'), p);
  }
  const unknown = await get(httpPort, 'nobody.test', '/');
  assert.equal(unknown.status, 403);
  assert.equal(unknown.body, 'gatekeeper: unknown host');
});

test("applyConfig: an invalid config is refused with Caddy's error and the previous config keeps serving", async () => {
  const before = await get(httpPort, 'app.test', '/', { Cookie: `argos_session=${GOOD_SESSION}` });
  const broken = structuredClone(config) as { apps: { http: { servers: { argos_http: { routes: unknown[] } } } } };
  broken.apps.http.servers.argos_http.routes.unshift({ handle: [{ handler: 'nosuch' }] });
  const r = await applyConfig(caddy!.admin, broken);
  assert.equal(r.ok, false);
  assert.ok(!r.ok && /unknown module: http\.handlers\.nosuch/.test(r.error), JSON.stringify(r));
  assert.ok(!r.ok && r.status === 400);
  await assert.rejects(caddy!.admin.load(broken), (e: unknown) => e instanceof CaddyLoadError && e.caddyError.includes('nosuch'));
  const afterwards = await get(httpPort, 'app.test', '/', { Cookie: `argos_session=${GOOD_SESSION}` });
  assert.equal(afterwards.status, before.status);
  assert.deepStrictEqual(JSON.parse(afterwards.body).headers['remote-user'], JSON.parse(before.body).headers['remote-user']);
  assert.deepStrictEqual(await drift(caddy!.admin, config), { inSync: true, reachable: true });
});

test('If-Match: a stale Etag is refused with 412', async () => {
  const { etag } = await caddy!.admin.getConfig();
  assert.ok(etag);
  await caddy!.admin.load(config, etag); // current Etag: accepted
  await assert.rejects(caddy!.admin.load(config, '"/config/ 0000000000"'), (e: unknown) => e instanceof CaddyLoadError && e.status === 412);
});

test("drift: a config changed behind Argos's back is reported; re-applying repairs it", async () => {
  const other = structuredClone(config) as { apps: { http: { servers: { argos_http: { routes: { handle: unknown[] }[] } } } } };
  const routes = other.apps.http.servers.argos_http.routes;
  routes.splice(routes.length - 1, 0, { handle: [{ handler: 'static_response', status_code: 200, body: 'hijacked' }] } as { handle: unknown[] });
  await caddy!.admin.load(other); // directly, not through applyConfig
  assert.equal((await get(httpPort, 'nobody.test', '/')).body, 'hijacked');
  assert.deepStrictEqual(await drift(caddy!.admin, config), { inSync: false, reachable: true });
  assert.equal((await applyConfig(caddy!.admin, config)).ok, true);
  assert.deepStrictEqual(await drift(caddy!.admin, config), { inSync: true, reachable: true });
});

test('drift: an unreachable admin API is reported as such', async () => {
  const nowhere = new CaddyAdminClient(`unix/${path.join(dir, 'nothing-here.sock')}`);
  assert.equal(await nowhere.reachable(), false);
  assert.deepStrictEqual(await drift(nowhere, config), { inSync: false, reachable: false });
  const r = await applyConfig(nowhere, config);
  assert.equal(r.ok, false);
});

test('startCaddy: stop() ends Caddy, and a restart on the same socket works', async () => {
  await caddy!.stop();
  assert.notEqual(caddy!.child.exitCode ?? caddy!.child.signalCode, null);
  assert.equal(await caddy!.admin.reachable(), false);
  caddy = await startCaddy({ config, adminListen, dataDir: dir });
  assert.equal((await get(httpPort, 'nobody.test', '/')).status, 403);
  assert.deepStrictEqual(await drift(caddy.admin, config), { inSync: true, reachable: true });
});
