/**
 * Golden-file tests of the Caddy config generator, plus explicit security assertions on every case,
 * the session-cookie regexps, and `caddy validate` on the generated JSON.
 * Regenerate the expected files with: UPDATE_GOLDEN=1 node --import tsx --test shared/src/caddy/config.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildCaddyConfig, caddyConfigHash, CaddyConfigError, IDENTITY_HEADERS, PORTAL_PATHS, SESSION_COOKIE_REPLACEMENTS, type CaddyInput, IDENTITY_LOOKALIKES, CREDENTIAL_MARKER } from './config.ts';
import { findCaddy } from './process.ts';

type J = any; // eslint-disable-line @typescript-eslint/no-explicit-any -- walking arbitrary Caddy JSON

const here = path.dirname(fileURLToPath(import.meta.url));
const testdata = path.join(here, 'testdata');
const CASES = fs
  .readdirSync(testdata)
  .filter((f) => f.endsWith('.input.json'))
  .map((f) => f.slice(0, -'.input.json'.length))
  .sort();
const REQUIRED_CASES = ['tls-off', 'tls-acme', 'tls-internal', 'mixed', 'behind-caddy', 'access-log'];

function loadInput(name: string): CaddyInput {
  const raw = JSON.parse(fs.readFileSync(path.join(testdata, `${name}.input.json`), 'utf8'));
  return { ...raw, portal: new URL(raw.portal) };
}

const build = (input: CaddyInput): J => JSON.parse(JSON.stringify(buildCaddyConfig(input)));

const servers = (config: J): [string, J][] => Object.entries(config.apps.http.servers);

/** Handlers of a route in execution order: top-level handlers, with a subroute expanded into its routes' handlers. */
function handlersOf(route: J): J[] {
  const out: J[] = [];
  for (const h of route.handle) {
    if (h.handler === 'subroute') for (const r of h.routes) out.push(...handlersOf(r));
    else out.push(h);
  }
  return out;
}

function isForwardAuth(h: J, gatekeeperDial: string): boolean {
  return (
    h?.handler === 'reverse_proxy' &&
    h.rewrite?.method === 'GET' &&
    h.rewrite?.uri === '/verify' &&
    h.upstreams?.length === 1 &&
    h.upstreams[0].dial === gatekeeperDial
  );
}

const isStaticRoute = (route: J) => route.handle.length === 1 && route.handle[0].handler === 'static_response';

/** Caddy path matcher semantics, enough for our patterns: exact, or `*` as any run of characters. */
function caddyPathMatches(pattern: string, p: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .split('*')
        .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*') +
      '$',
    'i',
  );
  return re.test(p);
}

/** Applies the replacements the way Caddy does (Go regexp.ReplaceAllString, in list order). */
function stripCookie(header: string): string {
  let v = header;
  for (const r of SESSION_COOKIE_REPLACEMENTS) v = v.replace(new RegExp(r.search_regexp, 'g'), r.replace);
  return v;
}

test('all required golden cases exist', () => {
  for (const c of REQUIRED_CASES) assert.ok(CASES.includes(c), `missing testdata/${c}.input.json`);
});

for (const name of CASES) {
  test(`golden: ${name}`, () => {
    const actual = build(loadInput(name));
    const file = path.join(testdata, `${name}.expected.json`);
    if (process.env.UPDATE_GOLDEN === '1') {
      fs.writeFileSync(file, JSON.stringify(actual, null, 2) + '\n');
      return;
    }
    assert.ok(fs.existsSync(file), `${file} is missing: run with UPDATE_GOLDEN=1 and review the diff`);
    assert.deepStrictEqual(actual, JSON.parse(fs.readFileSync(file, 'utf8')));
  });

  test(`security invariants: ${name}`, () => {
    const input = loadInput(name);
    const gk = input.gatekeeperDial;
    const config = build(input);

    for (const [serverName, server] of servers(config)) {
      const routes: J[] = server.routes;
      for (const route of routes) {
        const id = route['@id'];
        if (isStaticRoute(route)) {
          // The only static top-level routes are HTTP→HTTPS redirects.
          assert.match(id, /^argos-redirect-/, `${serverName}: unexpected static route ${id}`);
          assert.equal(route.handle[0].status_code, 308);
          continue;
        }
        const hs = handlersOf(route);
        assert.ok(isForwardAuth(hs[0], gk), `${serverName}/${id}: first handler must be forward_auth to the gatekeeper`);
        const fa = hs[0];
        assert.ok(fa.headers.request.delete.includes('X-Argos-Portal'), `${id}: client's X-Argos-Portal must not reach /verify`);
        assert.ok(fa.transport.keep_alive.max_idle_conns_per_host >= 256, `${id}: gatekeeper keep-alive pool`);

        // 2xx: delete every identity header first, then set each one only when the gatekeeper sent it non-empty.
        const hr = fa.handle_response.find((x: J) => JSON.stringify(x.match) === JSON.stringify({ status_code: [2] }));
        assert.ok(hr, `${id}: no 2xx handle_response`);
        const first = hr.routes[0];
        assert.equal(first.match, undefined, `${id}: the delete must be unconditional`);
        assert.deepStrictEqual([...first.handle[0].request.delete].sort(), [...IDENTITY_HEADERS, ...IDENTITY_LOOKALIKES].sort());
        assert.equal(first.handle[0].request.set, undefined);
        // A consumed Authorization (API token, Basic) is dropped only when the gatekeeper marks it.
        const cred = hr.routes[1];
        assert.deepStrictEqual(cred.handle[0].request.delete, ['Authorization']);
        assert.deepStrictEqual(cred.match, [{ not: [{ vars: { [`{http.reverse_proxy.header.${CREDENTIAL_MARKER}}`]: ['', '<nil>'] } }] }]);
        const setRoutes = hr.routes.slice(2);
        assert.equal(setRoutes.length, IDENTITY_HEADERS.length);
        const setHeaders = new Set<string>();
        for (const r of setRoutes) {
          const set = r.handle[0].request.set;
          const names = Object.keys(set);
          assert.equal(names.length, 1);
          const h = names[0]!;
          setHeaders.add(h);
          const ph = `{http.reverse_proxy.header.${h}}`;
          assert.deepStrictEqual(set[h], [ph]);
          assert.deepStrictEqual(r.match, [{ not: [{ vars: { [ph]: ['', '<nil>'] } }] }], `${id}: ${h} must be guarded`);
        }
        assert.deepStrictEqual([...setHeaders].sort(), [...IDENTITY_HEADERS].sort());

        if (typeof id === 'string' && id.startsWith('argos-host-')) {
          const strip = hs.findIndex((h) => h.handler === 'headers' && h.request?.replace?.Cookie);
          const upstream = hs.findIndex((h, i) => i > 0 && h.handler === 'reverse_proxy');
          assert.ok(strip > 0, `${id}: no cookie stripping`);
          assert.ok(upstream > strip, `${id}: cookie stripping must come before the upstream reverse_proxy`);
          assert.deepStrictEqual(hs[strip].request.replace.Cookie, SESSION_COOKIE_REPLACEMENTS);
        }

        if (id === 'argos-portal') {
          const sub = route.handle[0].routes;
          const proxied = sub.filter((r: J) => r.handle.some((h: J) => h.handler === 'reverse_proxy' && !h.rewrite));
          assert.equal(proxied.length, 1, 'portal: exactly one route proxies to the gatekeeper');
          const paths: string[] = proxied[0].match[0].path;
          assert.deepStrictEqual(paths, [...PORTAL_PATHS]);
          for (const forbidden of ['/verify', '/metrics', '/healthz', '/VERIFY', '/verify/x', '/metrics?x']) {
            for (const p of paths) assert.ok(!caddyPathMatches(p, forbidden), `portal path ${p} would proxy ${forbidden}`);
          }
          const proxy = proxied[0].handle[0];
          assert.deepStrictEqual(proxy.headers.request.set['X-Argos-Portal'], ['1']);
          assert.deepStrictEqual([...proxy.headers.request.delete].sort(), ['X-Forwarded-Method', 'X-Forwarded-Uri']);
          const last = sub[sub.length - 1];
          assert.equal(last.match, undefined);
          assert.equal(last.handle[0].handler, 'static_response');
          assert.equal(last.handle[0].status_code, 404);
        }
      }

      // Catch-all: last route, no matcher, forward_auth then a 403 fail-safe.
      const last = routes[routes.length - 1];
      const expectId = serverName === 'argos_http' ? 'argos-catchall-http' : 'argos-catchall-https';
      assert.equal(last['@id'], expectId);
      assert.equal(last.match, undefined);
      const hs = handlersOf(last);
      assert.ok(isForwardAuth(hs[0], gk));
      assert.equal(hs[hs.length - 1].handler, 'static_response');
      assert.equal(hs[hs.length - 1].status_code, 403);
      assert.equal(routes.filter((r) => !r.match).length, 1, `${serverName}: only the catch-all lacks a host matcher`);
    }

    // Each enabled host is published exactly once as a proxied route; disabled ones never.
    const ids = servers(config).flatMap(([, s]) => s.routes.map((r: J) => r['@id']));
    for (const h of input.hosts) {
      const n = ids.filter((i) => i === `argos-host-${h.domain}`).length;
      assert.equal(n, h.enabled ? 1 : 0, `${h.domain}: published ${n} times`);
      if (h.enabled && h.tlsMode !== 'off') assert.ok(ids.includes(`argos-redirect-${h.domain}`));
    }
    assert.equal(new Set(ids).size, ids.length, '@id values must be unique');
  });
}

test('tls-off: one plain HTTP server on the given port, automatic HTTPS off', () => {
  const c = build(loadInput('tls-off'));
  assert.deepStrictEqual(Object.keys(c.apps.http.servers), ['argos_http']);
  const s = c.apps.http.servers.argos_http;
  assert.deepStrictEqual(s.listen, ['127.0.0.1:18080']);
  assert.deepStrictEqual(s.automatic_https, { disable: true });
  assert.equal(c.apps.http.http_port, 18080);
  assert.equal(c.apps.http.https_port, 18443);
  assert.deepStrictEqual(c.admin.origins, ['', 'localhost']);
  assert.deepStrictEqual(c.admin.config, { persist: false });
  assert.equal(c.apps.tls, undefined);
  assert.equal(c.logging, undefined);
});

test('tls-acme: https server for the host, explicit 308 redirect on http, tcp admin keeps default origins', () => {
  const c = build(loadInput('tls-acme'));
  const { argos_http: http, argos_https: https } = c.apps.http.servers;
  assert.deepStrictEqual(https.listen, [':443']);
  assert.deepStrictEqual(https.automatic_https, { disable_redirects: true });
  assert.deepStrictEqual(http.automatic_https, { disable_redirects: true });
  const redirect = http.routes.find((r: J) => r['@id'] === 'argos-redirect-app.example.com');
  assert.deepStrictEqual(redirect.handle[0].headers.Location, ['https://{http.request.host}{http.request.uri}']);
  assert.ok(https.routes.some((r: J) => r['@id'] === 'argos-host-app.example.com'));
  assert.ok(!http.routes.some((r: J) => r['@id'] === 'argos-host-app.example.com'));
  const proxy = handlersOf(https.routes.find((r: J) => r['@id'] === 'argos-host-app.example.com')).at(-1);
  assert.deepStrictEqual(proxy.upstreams, [{ dial: 'nas.lan:5001' }]);
  assert.deepStrictEqual(proxy.transport, { protocol: 'http', tls: { insecure_skip_verify: true } });
  assert.equal(c.admin.origins, undefined);
});

test('tls-internal: internal issuer policy for the host and portal; Location carries a non-443 https port', () => {
  const c = build(loadInput('tls-internal'));
  assert.deepStrictEqual(c.apps.tls.automation.policies, [{ subjects: ['auth.example.com', 'nas.example.com'], issuers: [{ module: 'internal' }] }]);
  const redirect = c.apps.http.servers.argos_http.routes.find((r: J) => r['@id'] === 'argos-redirect-nas.example.com');
  assert.deepStrictEqual(redirect.handle[0].headers.Location, ['https://{http.request.host}:8443{http.request.uri}']);
  const proxy = handlersOf(c.apps.http.servers.argos_https.routes.find((r: J) => r['@id'] === 'argos-host-nas.example.com')).at(-1);
  assert.deepStrictEqual(proxy.upstreams, [{ dial: '10.0.0.7:80' }, { dial: '10.0.0.8:8080' }]);
  assert.equal(proxy.transport, undefined);
});

test('mixed: disabled host omitted, plain hosts on http, routes sorted by domain, output independent of input order', () => {
  const input = loadInput('mixed');
  const c = build(input);
  const json = JSON.stringify(c);
  assert.ok(!json.includes('old.example.com'));
  const httpIds = c.apps.http.servers.argos_http.routes.map((r: J) => r['@id']);
  assert.deepStrictEqual(httpIds, [
    'argos-redirect-alpha.example.com',
    'argos-redirect-auth.example.com',
    'argos-host-media.lan',
    'argos-host-printer.lan',
    'argos-redirect-vault.example.com',
    'argos-redirect-zeta.example.com',
    'argos-catchall-http',
  ]);
  const httpsIds = c.apps.http.servers.argos_https.routes.map((r: J) => r['@id']);
  assert.deepStrictEqual(httpsIds, [
    'argos-host-alpha.example.com',
    'argos-portal',
    'argos-host-vault.example.com',
    'argos-host-zeta.example.com',
    'argos-catchall-https',
  ]);
  const printer = handlersOf(c.apps.http.servers.argos_http.routes.find((r: J) => r['@id'] === 'argos-host-printer.lan')).at(-1);
  assert.deepStrictEqual(printer.upstreams, [{ dial: '[fd00::5]:631' }]);
  const zeta = handlersOf(c.apps.http.servers.argos_https.routes.find((r: J) => r['@id'] === 'argos-host-zeta.example.com')).at(-1);
  assert.deepStrictEqual(zeta.transport, { protocol: 'http', tls: {} });
  const reversed = build({ ...input, hosts: [...input.hosts].reverse() });
  assert.deepStrictEqual(reversed, c);
  assert.equal(caddyConfigHash(reversed), caddyConfigHash(c));
});

test('behind-caddy: panel host asks the gatekeeper, then proxies to the panel', () => {
  const c = build(loadInput('behind-caddy'));
  const panel = c.apps.http.servers.argos_https.routes.find((r: J) => r['@id'] === 'argos-panel');
  assert.deepStrictEqual(panel.match, [{ host: ['panel.example.com'] }]);
  const hs = handlersOf(panel);
  assert.ok(isForwardAuth(hs[0], '127.0.0.1:9091'));
  assert.deepStrictEqual(hs.at(-1).upstreams, [{ dial: '127.0.0.1:8080' }]);
  assert.ok(c.apps.http.servers.argos_http.routes.some((r: J) => r['@id'] === 'argos-redirect-panel.example.com'));
});

test('access-log: file logger with rolling, JSON encoder, wired to every server, excluded from the default log', () => {
  const c = build(loadInput('access-log'));
  assert.deepStrictEqual(c.logging.logs.argos_access, {
    writer: { output: 'file', filename: '/var/lib/argos/logs/caddy-access.log', roll_size_mb: 50, roll_keep: 5 },
    encoder: { format: 'json' },
    include: ['http.log.access.argos_access'],
  });
  assert.deepStrictEqual(c.logging.logs.default, { exclude: ['http.log.access.argos_access'] });
  for (const [, s] of servers(c)) assert.deepStrictEqual(s.logs, { default_logger_name: 'argos_access' });
});

test('invalid input is refused with every problem listed', () => {
  const input = loadInput('mixed');
  const bad: CaddyInput = {
    ...input,
    hosts: [
      ...input.hosts,
      { ...input.hosts[0]!, domain: 'media.lan' },
      { ...input.hosts[0]!, domain: 'x{env.HOME}.example.com' },
      { ...input.hosts[0]!, domain: 'p.example.com', upstreams: ['http://10.0.0.1/sub/path'] },
      { ...input.hosts[0]!, domain: 'q.example.com', upstreams: ['http://10.0.0.1', 'https://10.0.0.2'] },
      { ...input.hosts[0]!, domain: 'r.example.com', upstreams: [] },
    ],
  };
  assert.throws(
    () => buildCaddyConfig(bad),
    (e: unknown) => e instanceof CaddyConfigError && e.problems.length === 5,
  );
});

test('caddyConfigHash ignores key order and changes with content', () => {
  assert.equal(caddyConfigHash({ a: 1, b: { c: [1, 2], d: 'x' } }), caddyConfigHash({ b: { d: 'x', c: [1, 2] }, a: 1 }));
  assert.notEqual(caddyConfigHash({ a: 1 }), caddyConfigHash({ a: 2 }));
  assert.notEqual(caddyConfigHash({ a: [1, 2] }), caddyConfigHash({ a: [2, 1] }));
  assert.match(caddyConfigHash({}), /^[0-9a-f]{64}$/);
});

test('session cookie regexps remove argos_session and its separator, nothing else', () => {
  const cases: [string, string][] = [
    ['a=1; argos_session=S; b=2', 'a=1; b=2'],
    ['argos_session=S; b=2', 'b=2'],
    ['argos_session=S', ''],
    ['x=1; argos_session=S', 'x=1'],
    ['my_argos_session=keep; b=2', 'my_argos_session=keep; b=2'],
    ['a=1; my_argos_session=keep', 'a=1; my_argos_session=keep'],
    ['argos_session_x=keep; argos_session=S', 'argos_session_x=keep'],
    ['a=1;argos_session=S;b=2', 'a=1;b=2'],
    ['argos_session=A; argos_session=B; c=1', 'c=1'],
    ['a=1; argos_session=A; argos_session=B', 'a=1'],
    [' argos_session = S ; b=2', 'b=2'],
    ['a=argos_session=S; b=2', 'a=argos_session=S; b=2'],
    ['theme=dark', 'theme=dark'],
    ['', ''],
  ];
  for (const [input, want] of cases) assert.equal(stripCookie(input), want, `Cookie: ${JSON.stringify(input)}`);
  // Caddy compiles these with Go's RE2: no lookaround, no backreferences.
  for (const r of SESSION_COOKIE_REPLACEMENTS) assert.doesNotMatch(r.search_regexp, /\(\?<?[=!]|\\[1-9]/);
});

test('caddy validate accepts every generated config', (t) => {
  const caddy = findCaddy();
  assert.ok(caddy, 'caddy is not installed: run `npm test` as root to install it (apt-get install -y caddy), or install Caddy 2.6+ on PATH');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-caddy-validate-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const name of CASES) {
    const input = loadInput(name);
    const config = buildCaddyConfig({
      ...input,
      admin: { listen: `unix/${path.join(dir, 'admin.sock')}` },
      accessLog: input.accessLog ? path.join(dir, 'access.log') : null,
    });
    const file = path.join(dir, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
    const r: SpawnSyncReturns<string> = spawnSync(caddy, ['validate', '--config', file], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, XDG_CONFIG_HOME: path.join(dir, 'config'), XDG_DATA_HOME: path.join(dir, 'data') },
    });
    assert.equal(r.status, 0, `caddy validate ${name}: ${r.stderr}`);
  }
});
