/**
 * The decision engine through real Caddy (issue 3): the right answer for every kind of client, bypass rules that
 * cannot be stretched by path tricks, allowed groups, network rules that a spoofed X-Forwarded-For cannot satisfy,
 * revocation within 2 seconds, `argos check` explaining decisions, and a fuzz of /verify with malformed requests.
 * Path attacks are sent raw (exact bytes on the socket): fetch and curl would clean them first.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createArgos, portalLogin, rawRequest, startEcho, waitFor, type Argos, type RawResponse } from '../lib/argos.ts';
import { FuzzGen, Rng, sendRaw, sendWithNode, type HeaderList } from '../lib/fuzz.ts';

const UA = 'Mozilla/5.0 (X11; Linux x86_64) argos-e2e';
const BROWSER = { Accept: 'text/html,application/xhtml+xml', 'User-Agent': UA };
const WS = {
  Upgrade: 'websocket',
  Connection: 'Upgrade',
  'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Version': '13',
  Origin: 'http://app.example.test',
};

/** Every kind of client the gatekeeper must answer correctly, with what a logged-out visitor of it must get. */
const CLIENTS: { name: string; method: string; headers: Record<string, string>; body?: string; loggedOut: 302 | 303 | 401 }[] = [
  { name: 'browser GET (Accept: text/html)', method: 'GET', headers: BROWSER, loggedOut: 302 },
  {
    name: 'browser GET (Sec-Fetch-Mode: navigate, Accept: */*)',
    method: 'GET',
    headers: { Accept: '*/*', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'document', 'User-Agent': UA },
    loggedOut: 302,
  },
  {
    name: 'form POST (navigate)',
    method: 'POST',
    headers: { ...BROWSER, 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'document', 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'comment=hello',
    loggedOut: 303,
  },
  {
    name: 'fetch (Sec-Fetch-Mode: cors)',
    method: 'GET',
    headers: { Accept: '*/*', 'Sec-Fetch-Mode': 'cors', 'Sec-Fetch-Dest': 'empty', 'User-Agent': UA },
    loggedOut: 401,
  },
  {
    name: 'fetch that accepts HTML (Sec-Fetch-Mode: cors)',
    method: 'GET',
    headers: { ...BROWSER, 'Sec-Fetch-Mode': 'cors', 'Sec-Fetch-Dest': 'empty' },
    loggedOut: 401,
  },
  { name: 'XHR (X-Requested-With, Accept: text/html)', method: 'GET', headers: { ...BROWSER, 'X-Requested-With': 'XMLHttpRequest' }, loggedOut: 401 },
  { name: 'JSON API client (Accept: application/json)', method: 'GET', headers: { Accept: 'application/json', 'User-Agent': 'curl/8.5.0' }, loggedOut: 401 },
  { name: 'API client with an Authorization header', method: 'GET', headers: { ...BROWSER, Authorization: 'Bearer not-a-token' }, loggedOut: 401 },
  { name: 'WebSocket upgrade', method: 'GET', headers: { ...WS, 'User-Agent': UA }, loggedOut: 401 },
  { name: 'HEAD from a browser', method: 'HEAD', headers: BROWSER, loggedOut: 302 },
  { name: 'HEAD from a script', method: 'HEAD', headers: { Accept: '*/*', 'User-Agent': 'curl/8.5.0' }, loggedOut: 401 },
  {
    name: 'OPTIONS (CORS preflight)',
    method: 'OPTIONS',
    headers: { Accept: '*/*', Origin: 'http://other.example.test', 'Access-Control-Request-Method': 'PUT', 'Sec-Fetch-Mode': 'cors', 'User-Agent': UA },
    loggedOut: 401,
  },
];

/** Raw paths that try to stretch the `/api/health` bypass rule onto other paths. None may reach the upstream without login. */
const BYPASS_ATTACKS = [
  '/api/health/../admin',
  '/API/health/%2e%2e/admin',
  '/api/health/%2e%2e/admin',
  '/api/health/%2E%2E/admin',
  '/api/health/.%2e/admin',
  '/api/health/./../admin',
  '/api/health%2F..%2Fadmin',
  '/api/health%2f..%2fadmin',
  '/api/health/..%2Fadmin',
  '/api/health/..;/admin',
  '/api/health/..;jsessionid=1/admin',
  '//api/health/../../admin',
  '/api/health/../../../admin',
  '/api/health/..\\admin',
  '/api/health/..%5Cadmin',
  '/api/health%00/../admin',
  '/api/health%0d%0a/../admin',
  '/api/healthz',
  '/api/health-admin',
  '/api/healt%68z',
  '/%61pi/health/../admin',
  '/api/health/%252e%252e/admin/../../../admin',
];

describe('decision engine through real Caddy', () => {
  let argos: Argos;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let app: string;
  let aliceCookie: string;
  let rootCookie: string;
  let bobCookie: string;
  const ok = (r: { code: number; stdout: string; stderr: string }) => assert.equal(r.code, 0, r.stderr || r.stdout);

  before(async () => {
    echo = await startEcho();
    argos = await createArgos({ ARGOS_TRUSTED_PROXIES: '127.0.0.1/32' });
    const up = `http://127.0.0.1:${echo.port}`;
    ok(argos.cli(['user', 'add', 'alice', '--password-stdin', '--email', 'alice@example.test', '--groups', 'family'], 'wonderland-2026\n'));
    ok(argos.cli(['user', 'add', 'root', '--password-stdin', '--groups', 'admins'], 'root-password-2026\n'));
    ok(argos.cli(['user', 'add', 'bob', '--password-stdin'], 'builder-bob-2026\n'));
    ok(argos.cli(['host', 'add', 'app.example.test', '--upstream', up, '--tls', 'off', '--policy', 'one_factor']));
    ok(argos.cli(['host', 'rule', 'add', 'app.example.test', '--policy', 'bypass', '--path', '/api/health']));
    ok(argos.cli(['host', 'add', 'staff.example.test', '--upstream', up, '--tls', 'off', '--policy', 'one_factor', '--allow-tokens', 'true']));
    ok(argos.cli(['host', 'add', 'lan.example.test', '--upstream', up, '--tls', 'off', '--policy', 'one_factor']));
    ok(argos.cli(['host', 'rule', 'add', 'lan.example.test', '--policy', 'bypass', '--path', '/office', '--networks', '127.0.0.5/32']));
    ok(argos.cli(['host', 'add', 'open.example.test', '--upstream', up, '--tls', 'off', '--policy', 'bypass']));
    ok(argos.cli(['host', 'add', 'closed.example.test', '--upstream', up, '--tls', 'off', '--policy', 'deny']));
    await argos.start();
    app = `app.example.test:${argos.ports.caddy}`;
    const login = async (u: string, p: string) => {
      const r = await portalLogin(argos, u, p, `http://${app}/`);
      assert.equal(r.status, 303, `${u} logs in: ${r.body.slice(0, 200)}`);
      return r.sessionCookie!;
    };
    aliceCookie = await login('alice', 'wonderland-2026');
    rootCookie = await login('root', 'root-password-2026');
    bobCookie = await login('bob', 'builder-bob-2026');
  });

  after(async () => {
    await argos?.stop();
    await echo?.close();
  });

  const send = (c: (typeof CLIENTS)[number], path: string, cookie?: string) =>
    argos.viaCaddy(app, path, { method: c.method, headers: { ...c.headers, ...(cookie ? { Cookie: cookie } : {}) }, body: c.body });

  test('when a logged-out visitor arrives with each kind of client, then navigations go to the portal (302 GET/HEAD, 303 POST) with rd, and fetch, XHR, API, WebSocket and preflight get 401 JSON', async () => {
    const seen = echo.requests.length;
    for (const [i, c] of CLIENTS.entries()) {
      const path = `/matrix/${i}?page=2`;
      const r = await send(c, path);
      assert.equal(r.status, c.loggedOut, `${c.name}: ${r.status} ${r.body.slice(0, 120)}`);
      assert.ok(r.headers['x-argos-request-id'], `${c.name}: request id`);
      if (c.loggedOut !== 401) {
        const loc = new URL(r.headers.location!);
        assert.equal(`${loc.protocol}//${loc.host}${loc.pathname}`, `http://${argos.portalHost}:${argos.ports.caddy}/login`, c.name);
        assert.equal(loc.searchParams.get('rd'), `http://${app}${path}`, `${c.name}: a top-level navigation returns where it was`);
      } else {
        assert.match(String(r.headers['www-authenticate']), /^Bearer realm="argos"/, c.name);
        assert.equal(r.headers.location, undefined, `${c.name}: an API client is never redirected to an HTML page`);
        if (c.method !== 'HEAD') {
          const body = JSON.parse(r.body);
          assert.equal(body.error, 'unauthorized', c.name);
          const login = new URL(body.login_url);
          assert.equal(login.host, `${argos.portalHost}:${argos.ports.caddy}`, c.name);
          // A background request must not become the return URL (users would land on an API URL after login).
          assert.equal(login.searchParams.get('rd'), `http://${app}/`, `${c.name}: rd is the site, not the API URL`);
        }
      }
    }
    assert.equal(echo.requests.length, seen, 'the upstream saw none of it');
  });

  test('when the visitor is logged in, then every kind of client reaches the upstream with Argos identity headers', async () => {
    for (const [i, c] of CLIENTS.entries()) {
      const seen = echo.requests.length;
      const r = await send(c, `/matrix/${i}`, aliceCookie);
      // The echo upstream is plain HTTP and does not upgrade: for WebSocket, what matters is that the gatekeeper let it through.
      assert.ok(![302, 303, 401, 403].includes(r.status), `${c.name}: ${r.status}`);
      if (c.name !== 'WebSocket upgrade') assert.equal(r.status, 200, `${c.name}: ${r.status} ${r.body.slice(0, 120)}`);
      assert.equal(echo.requests.length, seen + 1, `${c.name}: reached the upstream`);
      const got = echo.requests.at(-1)!;
      assert.equal(got.method, c.method, c.name);
      assert.equal(got.url, `/matrix/${i}`, c.name);
      assert.equal(got.headers['remote-user'], 'alice', c.name);
      assert.equal(got.headers['remote-groups'], 'family', c.name);
      assert.ok(!String(got.headers.cookie ?? '').includes('argos_session'), `${c.name}: the session cookie stays at the gate`);
      if (c.name === 'WebSocket upgrade') assert.equal(String(got.headers.upgrade).toLowerCase(), 'websocket', 'the upgrade was passed on');
    }
  });

  test('when WebSocket upgrades are refused, then the connections between Caddy and the gatekeeper keep answering other requests', async () => {
    // An upgrade request answered without 101 must not leave a keep-alive connection in a state where the next
    // forward-auth request on it hangs (a cheap way to stall every visitor).
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => argos.viaCaddy(app, `/ws/${i}`, { headers: i % 2 ? { Accept: 'application/json' } : { ...WS, 'User-Agent': UA } })),
    );
    assert.deepEqual([...new Set(answers.map((r) => r.status))], [401]);
    const after = await Promise.all(Array.from({ length: 40 }, () => argos.viaCaddy(app, '/api/health', { headers: { Accept: 'application/json' } })));
    assert.deepEqual([...new Set(after.map((r) => r.status))], [200]);
    assert.ok(Date.now() - started < 9000, `took ${Date.now() - started} ms`);
  });

  test('when a bypass rule opens /api/health on a one_factor host, then it passes without login, and so do other spellings of the same path', async () => {
    for (const p of ['/api/health', '/api/health/', '/api/health/live', '/api/health?verbose=1', '/api/%68ealth', '/api//health', '/api/./health']) {
      const seen = echo.requests.length;
      const r = await argos.viaCaddy(app, p, { headers: { Accept: 'application/json' } });
      assert.equal(r.status, 200, `${p}: ${r.status}`);
      assert.equal(echo.requests.length, seen + 1, p);
      assert.equal(echo.requests.at(-1)!.headers['remote-user'], undefined, `${p}: no identity on a bypassed request`);
    }
  });

  test('when an attacker stretches the /api/health bypass with dot segments, encodings, case or a longer name, then nothing reaches the upstream without login', async () => {
    for (const p of BYPASS_ATTACKS) {
      for (const headers of [BROWSER, { Accept: 'application/json' }]) {
        const seen = echo.requests.length;
        let r: RawResponse;
        try {
          r = await argos.viaCaddy(app, p, { headers });
        } catch {
          continue; // Caddy (Go) may drop a request it cannot parse: that reaches nothing either.
        }
        assert.ok([302, 400, 401, 403].includes(r.status), `${p} (${headers.Accept}) → ${r.status} ${r.body.slice(0, 120)}`);
        assert.equal(echo.requests.length, seen, `${p} reached the upstream as ${echo.requests.at(-1)?.url}`);
        if (r.status === 302) assert.equal(new URL(r.headers.location!).host, `${argos.portalHost}:${argos.ports.caddy}`, p);
      }
      // The gatekeeper itself, asked directly with the raw URI (as if Caddy had passed anything through), refuses too.
      const direct = await rawRequest({
        port: argos.ports.gatekeeper,
        path: '/verify',
        headers: { 'X-Forwarded-Method': 'GET', 'X-Forwarded-Proto': 'http', 'X-Forwarded-Host': app, 'X-Forwarded-Uri': p, Accept: 'text/html' },
      });
      assert.ok([302, 400].includes(direct.status), `/verify ${p} → ${direct.status}`);
    }
  });

  test('when a rule opens a path for one client network, then that network passes and a spoofed X-Forwarded-For does not', async () => {
    const lan = `lan.example.test:${argos.ports.caddy}`;
    const inside = await argos.viaCaddy(lan, '/office', { headers: BROWSER, localAddress: '127.0.0.5' });
    assert.equal(inside.status, 200, 'a client really at 127.0.0.5 passes');
    for (const xff of ['127.0.0.5', '127.0.0.5, 127.0.0.1', '127.0.0.1, 127.0.0.5']) {
      const spoofed = await argos.viaCaddy(lan, '/office', {
        headers: { ...BROWSER, 'X-Forwarded-For': xff, 'X-Real-IP': '127.0.0.5', Forwarded: 'for=127.0.0.5' },
      });
      assert.equal(spoofed.status, 302, `X-Forwarded-For: ${xff} from 127.0.0.1 must not count`);
    }
    const elsewhere = await argos.viaCaddy(lan, '/admin', { headers: BROWSER, localAddress: '127.0.0.5' });
    assert.equal(elsewhere.status, 302, 'the rule is for /office only');
    // /verify answers only trusted proxies: a client calling it directly with a forged X-Forwarded-For gets 403.
    const forged = await rawRequest({
      port: argos.ports.gatekeeper,
      path: '/verify',
      localAddress: '127.0.0.5',
      headers: {
        'X-Forwarded-Method': 'GET',
        'X-Forwarded-Proto': 'http',
        'X-Forwarded-Host': lan,
        'X-Forwarded-Uri': '/office',
        'X-Forwarded-For': '127.0.0.5',
      },
    });
    assert.equal(forged.status, 403);
  });

  test('when a host allows only the admins group, then a logged-in user outside it gets 403 (without learning why) and a member passes', async () => {
    const staff = `staff.example.test:${argos.ports.caddy}`;
    assert.equal((await argos.viaCaddy(staff, '/', { headers: { ...BROWSER, Cookie: aliceCookie } })).status, 200, 'before: any logged-in user');
    ok(argos.cli(['host', 'edit', 'staff.example.test', '--allow-groups', 'admins']));
    const edited = Date.now();
    await waitFor(
      'alice refused on staff',
      async () => (await argos.viaCaddy(staff, '/', { headers: { ...BROWSER, Cookie: aliceCookie } })).status === 403,
      2000,
    );
    assert.ok(Date.now() - edited <= 2000, 'the edit applied within 2 seconds');
    const seen = echo.requests.length;
    for (const headers of [BROWSER, { Accept: 'application/json' }]) {
      const r = await argos.viaCaddy(staff, '/payroll', { headers: { ...headers, Cookie: aliceCookie } });
      assert.equal(r.status, 403);
      assert.doesNotMatch(r.body, /admins|subject|group|rule/i, 'the reason goes to the decision log, not to the client');
    }
    assert.equal(echo.requests.length, seen, 'the upstream saw nothing');
    const member = await argos.viaCaddy(staff, '/payroll', { headers: { ...BROWSER, Cookie: rootCookie } });
    assert.equal(member.status, 200);
    assert.equal(JSON.parse(member.body).headers['remote-groups'], 'admins');
  });

  test('when the operator changes a user’s password, then that user’s existing session stops passing within 2 seconds', async () => {
    assert.equal((await argos.viaCaddy(app, '/', { headers: { ...BROWSER, Cookie: bobCookie } })).status, 200);
    ok(argos.cli(['user', 'set-password', 'bob', '--password-stdin'], 'a-new-password-for-bob\n'));
    const changed = Date.now();
    await waitFor('bob’s session refused', async () => (await argos.viaCaddy(app, '/', { headers: { ...BROWSER, Cookie: bobCookie } })).status === 302, 2000);
    const took = Date.now() - changed;
    assert.ok(took <= 2000, `took ${took} ms`);
    const again = await portalLogin(argos, 'bob', 'a-new-password-for-bob', `http://${app}/`);
    assert.equal(again.status, 303, 'the new password works');
  });

  test('argos check explains an allowed, a login and a denied request in plain words, naming the check that decided', () => {
    const allowed = argos.cli(['check', '--host', 'app.example.test', '--uri', '/api/health', '--ip', '203.0.113.7']);
    ok(allowed);
    assert.match(allowed.stdout, /verdict: ALLOW \(bypass\) → HTTP 200/);
    assert.match(allowed.stdout, /host_policy\s+continue\s+policy bypass \(rule #1\)/);
    assert.match(allowed.stdout, /factors\s+allow\s+bypass: no login required/);

    const login = argos.cli(['check', '--host', 'app.example.test', '--uri', '/admin', '--ip', '203.0.113.7']);
    ok(login);
    assert.match(login.stdout, /verdict: LOGIN \(not_authenticated\) → HTTP 302 to http:\/\/auth\.example\.test:\d+\/login\?rd=/);
    assert.match(login.stdout, /factors\s+login\s+not_authenticated/);

    const denied = argos.cli(['check', '--host', 'staff.example.test', '--uri', '/payroll', '--ip', '203.0.113.7', '--user', 'alice']);
    ok(denied);
    assert.match(denied.stdout, /as alice/);
    assert.match(denied.stdout, /verdict: DENY \(subject_not_allowed\) → HTTP 403/);
    assert.match(denied.stdout, /subjects\s+deny\s+subject_not_allowed: alice is not listed/);

    const json = argos.cli([
      'check',
      '--host',
      'staff.example.test',
      '--uri',
      '/payroll',
      '--ip',
      '203.0.113.7',
      '--user',
      'root',
      '--accept',
      'application/json',
      '--json',
    ]);
    ok(json);
    const e = JSON.parse(json.stdout);
    assert.equal(e.verdict, 'allow');
    assert.equal(e.status, 200);
    // Every check ran, in the order issue 3 names them (other steps may sit between them).
    const names: string[] = e.checks.map((s: { check: string }) => s.check);
    const order = ['ban', 'geo', 'rate', 'host_policy', 'credentials', 'factors', 'subjects'].map((c) => names.indexOf(c));
    assert.ok(
      order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)),
      `checks in order: ${names.join(', ')}`,
    );
    assert.ok(
      e.checks.slice(0, -1).every((s: { result: string }) => s.result === 'continue'),
      'only the last check decided',
    );
    assert.deepEqual(e.checks.at(-1), { check: 'subjects', result: 'allow', reason: 'group_allowed', note: 'member of admins' });
  });

  // Last: the fuzz counts bad tokens against the clients it invents (and 127.0.0.1), which the tests above must not meet.
  test('fuzz: at least 10,000 malformed forward-auth requests never get a 5xx, and never a 200 without a valid session for an allowed host or a bypass', async (t) => {
    const seed = Number(process.env.ARGOS_FUZZ_SEED ?? 20_260_614);
    const aliceToken = aliceCookie.split('=')[1]!;
    const bobRevoked = bobCookie.split('=')[1]!;
    const rng = new Rng(seed);
    const gen = new FuzzGen(rng, {
      hosts: [
        'app.example.test',
        'staff.example.test',
        'closed.example.test',
        'open.example.test',
        argos.portalHost,
        'unknown.example.test',
        'lan.example.test',
      ],
      paths: [
        '/',
        '/admin',
        '/api/health',
        '/api/health/',
        '/api/health/live',
        '/api/healthz',
        '/API/health',
        '/api/health/../admin',
        '/office',
        '/.argos/handoff?t=abc',
        '/payroll?x=1#f',
      ],
      tokens: [aliceToken, bobRevoked, 'A'.repeat(43), aliceToken.toLowerCase()],
    });

    /**
     * The oracle, deliberately independent of Argos's own parser and lenient where the spec allows several answers.
     * A 200 is acceptable only if the request names a bypass host (open, the portal); or names app.example.test or
     * lan.example.test (one_factor, any user) and carries alice's live token; or names app.example.test with an
     * X-Forwarded-Uri that a WHATWG URL parser puts under /api/health; or names lan.example.test with a URI under
     * /office and mentions 127.0.0.5 (that rule's network). staff (admins only) and closed (deny) never pass for alice;
     * bob's token was revoked by the password change above.
     */
    const text = (h: HeaderList) =>
      h
        .map(([n, v]) => `${n}: ${v}`)
        .join('\n')
        .replace(/\u00ad/g, '')
        .normalize('NFKC')
        .toLowerCase();
    const unreserved = /[A-Za-z0-9\-._~]/;
    const under = (prefix: string) => (raw: string) => {
      const p = raw
        .split(/[?#]/)[0]!
        .replace(/%([0-9a-f]{2})/gi, (m, hex: string) =>
          unreserved.test(String.fromCharCode(parseInt(hex, 16))) ? String.fromCharCode(parseInt(hex, 16)) : m,
        );
      try {
        const path = new URL(p.replace(/\/{2,}/g, '/'), 'http://oracle.invalid').pathname;
        return path === prefix || path.startsWith(`${prefix}/`);
      } catch {
        return false;
      }
    };
    const mayPass = (h: HeaderList) => {
      const t = text(h);
      if (t.includes('open.example.test') || t.includes(argos.portalHost)) return true;
      const withAlice = h.some(([, v]) => v.includes(aliceToken));
      const uris = [
        ...h
          .map(([n, v]) => `${n}: ${v}`)
          .join('\n')
          .matchAll(/x-forwarded-uri:[ \t]*([^\r\n]*)/gi),
      ].map((m) => m[1]!.trim());
      if (t.includes('app.example.test') && (withAlice || uris.some(under('/api/health')))) return true;
      if (t.includes('lan.example.test') && (withAlice || (t.includes('127.0.0.5') && uris.some(under('/office'))))) return true;
      return false;
    };

    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const TARGET = 10_000;
    const counts = { sent: 0, refusedByNode: 0, raw: 0, noAnswer: 0, allowed: 0, byStatus: new Map<number, number>() };
    const failures: string[] = [];
    let generated = 0;
    const started = Date.now();

    const one = async () => {
      const i = generated++;
      const h = gen.headers();
      const method = rng.chance(0.9) ? 'GET' : rng.pick(['HEAD', 'POST', 'OPTIONS', 'PUT']);
      const raw = rng.chance(0.15);
      let res;
      try {
        if (raw) {
          counts.raw++;
          res = await sendRaw(argos.ports.gatekeeper, method, h, { utf8: rng.chance(0.5), bareLf: rng.chance(0.05) });
        } else {
          res = await sendWithNode(agent, argos.ports.gatekeeper, method, h);
        }
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        // Node's client refuses header bytes it considers invalid before sending: nothing reached the gatekeeper.
        if (['ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN', 'ERR_HTTP_INVALID_HEADER_VALUE'].includes(code)) {
          counts.refusedByNode++;
          return;
        }
        // Oversized requests: the server answers 431 and closes while the client may still be writing.
        const size = h.reduce((n, [k, v]) => n + k.length + v.length + 4, 0);
        if ((code === 'ECONNRESET' || code === 'EPIPE') && size > 16_000) {
          counts.refusedByNode++;
          return;
        }
        failures.push(`#${i} ${method} network error ${code || String(e)}: ${JSON.stringify(h).slice(0, 300)}`);
        return;
      }
      if (res.status === 0) {
        counts.noAnswer++;
        counts.sent++;
        return;
      }
      counts.sent++;
      counts.byStatus.set(res.status, (counts.byStatus.get(res.status) ?? 0) + 1);
      if (res.status >= 500) failures.push(`#${i} ${method} → ${res.status}: ${JSON.stringify(h).slice(0, 300)}`);
      if (res.status === 200) {
        counts.allowed++;
        if (!mayPass(h)) failures.push(`#${i} ${method} → 200 without a credential or bypass: ${JSON.stringify(h).slice(0, 400)}`);
        if (res.headers['remote-user'] && !h.some(([, v]) => v.includes(aliceToken)))
          failures.push(`#${i} identity ${res.headers['remote-user']} without alice's token: ${JSON.stringify(h).slice(0, 300)}`);
      }
    };

    const worker = async () => {
      while (counts.sent < TARGET && generated < TARGET * 1.6) await one();
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    agent.destroy();
    const took = Date.now() - started;
    const summary = `seed ${seed}: ${counts.sent} sent (${counts.raw} raw), ${counts.refusedByNode} refused by Node's client, ${counts.noAnswer} unanswered, ${counts.allowed} allowed, statuses ${JSON.stringify(Object.fromEntries(counts.byStatus))}, ${took} ms`;
    t.diagnostic(summary);
    assert.deepEqual(
      failures.slice(0, 10).map((f) => f.slice(0, 2000)),
      [],
      `${failures.length} failures; ${summary}`,
    );
    assert.ok(counts.sent >= TARGET, summary);
    assert.ok(counts.noAnswer <= counts.raw * 0.02, `too many requests without an answer: ${summary}`);
    assert.ok(counts.allowed >= 100, `the fuzz must also exercise the allow paths: ${summary}`);
    assert.ok((counts.byStatus.get(400) ?? 0) >= 1000, `the fuzz must mostly exercise refusals: ${summary}`);
    // The gatekeeper survived it all.
    assert.equal((await rawRequest({ port: argos.ports.gatekeeper, path: '/healthz' })).status, 200);
    assert.doesNotMatch(argos.logs(), /verify crashed|decision failed/);
  });
});
