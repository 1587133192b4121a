/**
 * The foundation story, black-box through real Caddy: an operator publishes hosts with the CLI; a visitor is sent
 * to the portal, logs in, reaches the upstream with Argos's identity headers (never their own), and loses access
 * when the operator disables them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { createArgos, portalLogin, rawRequest, startEcho, waitFor, ROOT, TSX, type Argos } from '../lib/argos.ts';

const BROWSER = { Accept: 'text/html,application/xhtml+xml', 'User-Agent': 'Mozilla/5.0 e2e' };

describe('Caddy → gatekeeper → upstream', () => {
  let argos: Argos;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let app: string;
  let cookie: string;

  before(async () => {
    echo = await startEcho();
    argos = await createArgos({ ARGOS_TRUSTED_PROXIES: '127.0.0.1/32' });
    const up = `http://127.0.0.1:${echo.port}`;
    const ok = (r: { code: number; stderr: string }) => assert.equal(r.code, 0, r.stderr);
    ok(argos.cli(['user', 'add', 'alice', '--password-stdin', '--email', 'alice@example.test', '--name', 'Alice Liddell', '--groups', 'family,media'], 'wonderland-2026\n'));
    ok(argos.cli(['host', 'add', 'app.example.test', '--upstream', up, '--tls', 'off', '--policy', 'one_factor']));
    ok(argos.cli(['host', 'add', 'open.example.test', '--upstream', up, '--tls', 'off', '--policy', 'bypass']));
    ok(argos.cli(['host', 'add', 'closed.example.test', '--upstream', up, '--tls', 'off', '--policy', 'deny']));
    await argos.start();
    app = `app.example.test:${argos.ports.caddy}`;
  });

  after(async () => {
    await argos?.stop();
    await echo?.close();
  });

  test('when a browser opens a protected host without a session, then it is sent to the portal with rd pointing back', async () => {
    const r = await argos.viaCaddy(app, '/library?item=42', { headers: BROWSER });
    assert.equal(r.status, 302);
    const loc = new URL(r.headers.location!);
    assert.equal(loc.host, `${argos.portalHost}:${argos.ports.caddy}`);
    assert.equal(loc.pathname, '/login');
    assert.equal(loc.searchParams.get('rd'), `http://${app}/library?item=42`);
    assert.ok(r.headers['x-argos-request-id'], 'every answer carries a request id');
    assert.equal(echo.requests.length, 0, 'the upstream saw nothing');
  });

  test('when the password is wrong, then the portal shows one vague error and sets no session', async () => {
    const r = await portalLogin(argos, 'alice', 'not-the-password', `http://${app}/`);
    assert.equal(r.status, 401);
    assert.match(r.body, /Invalid username or password/);
    assert.equal(r.sessionCookie, null);
    const unknown = await portalLogin(argos, 'mallory', 'whatever-password', `http://${app}/`);
    assert.match(unknown.body, /Invalid username or password/, 'an unknown user gets the same answer');
  });

  test('when the password is right, then the portal sets the session cookie for the parent domain and returns to rd', async () => {
    const r = await portalLogin(argos, 'alice', 'wonderland-2026', `http://${app}/library?item=42`);
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, `http://${app}/library?item=42`);
    assert.ok(r.sessionCookie, 'session cookie set');
    const raw = r.headers['set-cookie']!.find((c) => c.startsWith('argos_session='))!;
    assert.match(raw, /Domain=example\.test/);
    assert.match(raw, /HttpOnly/);
    assert.match(raw, /SameSite=Lax/);
    cookie = r.sessionCookie!;
  });

  test('with the session, the request reaches the upstream with Argos identity headers, never the client-sent ones, and without the session cookie', async () => {
    const r = await argos.viaCaddy(app, '/library?item=42', {
      headers: { ...BROWSER, Cookie: `theme=dark; ${cookie}; lang=en`, 'Remote-User': 'evil', 'Remote-Groups': 'admins', 'Remote-Email': 'evil@example.test' },
    });
    assert.equal(r.status, 200, r.body);
    const seen = JSON.parse(r.body);
    assert.equal(seen.upstream, 'echo');
    assert.equal(seen.headers['remote-user'], 'alice');
    assert.equal(seen.headers['remote-email'], 'alice@example.test');
    assert.equal(seen.headers['remote-name'], 'Alice Liddell');
    assert.equal(seen.headers['remote-groups'], 'family,media');
    assert.ok(!String(seen.headers.cookie ?? '').includes('argos_session'), `upstream saw the session cookie: ${seen.headers.cookie}`);
    assert.match(String(seen.headers.cookie), /theme=dark/);
    assert.match(String(seen.headers.cookie), /lang=en/);
    assert.equal(seen.url, '/library?item=42');
  });

  test('an upstream cannot plant Argos cookies, and underscore spellings of identity headers never reach it', async () => {
    const r = await argos.viaCaddy(app, '/x?plant-cookie=1', { headers: { ...BROWSER, Cookie: cookie, Remote_User: 'admin', Remote_Groups: 'admins' } });
    assert.equal(r.status, 200);
    const cookies = r.headers['set-cookie'] ?? [];
    assert.ok(!cookies.some((c) => c.startsWith('argos_')), `planted: ${cookies.join(' | ')}`);
    assert.ok(cookies.some((c) => c.startsWith('theme=dark')), 'other cookies pass');
    const seen = JSON.parse(r.body);
    assert.equal(seen.headers['remote_user'], undefined);
    assert.equal(seen.headers['remote_groups'], undefined);
    assert.equal(seen.headers['remote-user'], 'alice');
  });

  test('an XHR / API request without a session gets 401 JSON, not a redirect', async () => {
    const r = await argos.viaCaddy(app, '/api/items', { headers: { Accept: 'application/json', 'X-Requested-With': 'XMLHttpRequest' } });
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /Bearer/);
    assert.equal(JSON.parse(r.body).error, 'unauthorized');
  });

  test('a host not published in Argos gets 403 from the catch-all', async () => {
    const r = await argos.viaCaddy(`unknown.example.test:${argos.ports.caddy}`, '/', { headers: BROWSER });
    assert.equal(r.status, 403);
  });

  test('a bypass host passes without login; a deny host is refused even with a session', async () => {
    const open = await argos.viaCaddy(`open.example.test:${argos.ports.caddy}`, '/', { headers: { ...BROWSER, 'Remote-User': 'evil' } });
    assert.equal(open.status, 200);
    assert.equal(JSON.parse(open.body).headers['remote-user'], undefined, 'a spoofed identity never reaches the upstream');
    const closed = await argos.viaCaddy(`closed.example.test:${argos.ports.caddy}`, '/', { headers: { ...BROWSER, Cookie: cookie } });
    assert.equal(closed.status, 403);
  });

  test('the gatekeeper endpoints are not reachable through the portal host', async () => {
    for (const p of ['/verify', '/metrics', '/healthz', '/VERIFY', '/./verify', '//verify']) {
      const r = await argos.viaCaddy(`${argos.portalHost}:${argos.ports.caddy}`, p, { headers: { 'X-Forwarded-Method': 'GET', 'X-Forwarded-Uri': '/', 'X-Forwarded-Host': app } });
      assert.notEqual(r.status, 200, `${p} → ${r.status} ${r.body.slice(0, 80)}`);
    }
  });

  test('bad input: an untrusted caller of /verify gets 403 and a malformed X-Forwarded-Uri gets 400; never 200', async () => {
    const hdr = { 'X-Forwarded-Method': 'GET', 'X-Forwarded-Proto': 'http', 'X-Forwarded-Host': app, Cookie: cookie };
    const untrusted = await rawRequest({ port: argos.ports.gatekeeper, path: '/verify', headers: { ...hdr, 'X-Forwarded-Uri': '/' }, localAddress: '127.0.0.2' });
    assert.equal(untrusted.status, 403);
    for (const uri of ['/%zz', '/a%00b', '/../../etc/passwd', 'no-slash']) {
      const r = await rawRequest({ port: argos.ports.gatekeeper, path: '/verify', headers: { ...hdr, 'X-Forwarded-Uri': uri } });
      assert.equal(r.status, 400, uri);
    }
    const viaCaddy = await argos.viaCaddy(app, '/%zz', { headers: { ...BROWSER, Cookie: cookie } });
    assert.notEqual(viaCaddy.status, 200);
  });

  test('when the operator disables the user, then their session stops passing within 2 seconds', async () => {
    const r = argos.cli(['user', 'disable', 'alice']);
    assert.equal(r.code, 0, r.stderr);
    const started = Date.now();
    await waitFor('session refused', async () => (await argos.viaCaddy(app, '/', { headers: { ...BROWSER, Cookie: cookie } })).status === 302, 2000);
    assert.ok(Date.now() - started <= 2000);
    const audit = spawnSync(process.execPath, [path.join(ROOT, 'services/panel/bin/argos.mjs'), 'host', 'list', '--json'], { env: argos.env, encoding: 'utf8' });
    assert.equal(JSON.parse(audit.stdout).length, 3);
  });
});

describe('startup refuses a bad master key', () => {
  for (const [name, key] of [
    ['missing', ''],
    ['malformed', 'not-hex-and-too-short'],
  ] as const) {
    test(`when ARGOS_MASTER_KEY is ${name}, then each service exits non-zero naming the variable`, async () => {
      const a = await createArgos({ ARGOS_MASTER_KEY: key });
      try {
        for (const svc of ['services/gatekeeper/src/main.ts', 'services/panel/src/main.ts']) {
          const r = spawnSync(process.execPath, ['--import', TSX, path.join(ROOT, svc)], { env: a.env, encoding: 'utf8', timeout: 30_000 });
          assert.notEqual(r.status, 0, svc);
          assert.match(r.stderr, /ARGOS_MASTER_KEY/, svc);
          if (key) assert.ok(!r.stderr.includes(key), 'the bad value is not echoed');
        }
      } finally {
        await a.stop();
      }
    });
  }
});
