/**
 * Identity through the real portal and real Caddy (issue 4): TOTP sign-in and its replay protection, recovery codes
 * under a race, password-only states that open nothing, session fixation, logout everywhere, host-scoped API
 * tokens, brute-force regulation per client address, the cross-domain cookie handoff, and TOTP self-enrollment.
 * Different clients are different 127.0.0.0/8 addresses: Caddy puts the TCP peer into X-Forwarded-For and Argos
 * trusts loopback proxies (the default), so binding the client socket really changes the client Argos sees.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as OTPAuth from 'otpauth';
import { createArgos, startEcho, waitFor, type Argos, type RawResponse } from '../lib/argos.ts';
import { Visitor } from '../lib/visitor.ts';

const PASSWORDS: Record<string, string> = {
  alice: 'wonderland-2026',
  carol: 'carol-password-2026',
  dave: 'dave-password-2026',
  erin: 'erin-password-2026',
  gina: 'gina-password-2026',
};

/** The code an authenticator app shows for `secret` now (or `offsetS` seconds from now), computed independently of Argos. */
const totpCode = (secret: string, offsetS = 0) =>
  new OTPAuth.TOTP({ algorithm: 'SHA1', digits: 6, period: 30, secret: OTPAuth.Secret.fromBase32(secret) }).generate({
    timestamp: Date.now() + offsetS * 1000,
  });

const setCookies = (r: RawResponse) => r.headers['set-cookie'] ?? [];
const sessionSet = (r: RawResponse) => setCookies(r).find((c) => c.startsWith('argos_session=') && !c.startsWith('argos_session=;'));
const tokenOf = (setCookie: string | undefined) => setCookie?.split(';')[0]!.split('=')[1];

describe('identity through the portal and Caddy', () => {
  let argos: Argos;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let portal: string;
  let app: string;
  let secure: string;
  let other: string;
  const secrets: Record<string, string> = {};
  let recovery: string[] = [];
  let carolFirstCode: { code: string; at: number } | null = null;
  const ok = (r: { code: number; stdout: string; stderr: string }) => {
    assert.equal(r.code, 0, r.stderr || r.stdout);
    return r.stdout;
  };

  before(async () => {
    echo = await startEcho();
    argos = await createArgos();
    const up = `http://127.0.0.1:${echo.port}`;
    for (const [u, p] of Object.entries(PASSWORDS)) ok(argos.cli(['user', 'add', u, '--password-stdin', '--email', `${u}@example.test`], `${p}\n`));
    for (const u of ['carol', 'dave', 'erin']) secrets[u] = JSON.parse(ok(argos.cli(['user', 'totp', 'enroll', u, '--json']))).secret;
    recovery = JSON.parse(ok(argos.cli(['user', 'recovery-codes', 'dave', '--json']))).recovery_codes;
    ok(argos.cli(['host', 'add', 'app.example.test', '--upstream', up, '--tls', 'off', '--policy', 'one_factor']));
    ok(argos.cli(['host', 'add', 'secure.example.test', '--upstream', up, '--tls', 'off', '--policy', 'two_factor']));
    ok(argos.cli(['host', 'add', 'tok-a.example.test', '--upstream', up, '--tls', 'off', '--policy', 'one_factor', '--allow-tokens', 'true']));
    ok(argos.cli(['host', 'add', 'tok-b.example.test', '--upstream', up, '--tls', 'off', '--policy', 'one_factor', '--allow-tokens', 'true']));
    // A second, unrelated cookie domain and a host under it.
    ok(argos.cli(['settings', 'set', 'cookie.domains', 'example.test,other.test']));
    ok(argos.cli(['host', 'add', 'app.other.test', '--upstream', up, '--tls', 'off', '--policy', 'one_factor']));
    await argos.start();
    const port = argos.ports.caddy;
    portal = `http://${argos.portalHost}:${port}`;
    app = `http://app.example.test:${port}`;
    secure = `http://secure.example.test:${port}`;
    other = `http://app.other.test:${port}`;
  });

  after(async () => {
    await argos?.stop();
    await echo?.close();
  });

  test('when a TOTP user signs in, then the session exists only after a current code, opens the app, and its cookie never reaches the upstream', async () => {
    assert.equal(recovery.length, 10);
    const b = new Visitor(argos, { localAddress: '127.0.0.11' });
    const pw = await b.login('carol', PASSWORDS.carol!, `${app}/reports?q=1`);
    assert.equal(pw.status, 303);
    assert.equal(pw.headers.location, '/login/2fa');
    assert.equal(sessionSet(pw), undefined, 'a password alone creates no session');
    assert.equal(b.session(app), undefined);

    const code = totpCode(secrets.carol!);
    carolFirstCode = { code, at: Date.now() };
    const second = await b.secondFactor(code);
    assert.equal(second.status, 303, second.body.slice(0, 200));
    assert.equal(second.headers.location, `${app}/reports?q=1`);
    const cookie = sessionSet(second)!;
    assert.match(cookie, /; Domain=example\.test/);
    assert.match(cookie, /HttpOnly/);
    assert.ok(
      setCookies(second).some((c) => /^argos_2fa=;.*Max-Age=0/.test(c)),
      'the challenge cookie is cleared',
    );

    const r = await b.request(`${app}/reports?q=1`, { headers: { Cookie: `theme=dark; ${b.cookieHeader(app)}; lang=en` } });
    assert.equal(r.status, 200, r.body.slice(0, 200));
    const seen = JSON.parse(r.body);
    assert.equal(seen.headers['remote-user'], 'carol');
    assert.doesNotMatch(String(seen.headers.cookie), /argos_session|argos_2fa/, 'a compromised upstream never sees a session token');
    assert.match(String(seen.headers.cookie), /theme=dark/);
    assert.equal((await b.get(`${secure}/`)).status, 200, 'a completed second factor opens two_factor hosts');
  });

  test('when a TOTP code is replayed within its window, then it is refused', async () => {
    assert.ok(carolFirstCode, 'the happy path ran first');
    // The code used above is still inside the ±1 step window: only replay protection can refuse it.
    assert.ok(Date.now() - carolFirstCode.at < 30_000, 'still within the code’s window');
    const thief = new Visitor(argos, { localAddress: '127.0.0.12' });
    assert.equal((await thief.login('carol', PASSWORDS.carol!, `${app}/`)).status, 303);
    const r = await thief.secondFactor(carolFirstCode.code);
    assert.equal(r.status, 401);
    assert.match(r.body, /That code is not valid/);
    assert.equal(sessionSet(r), undefined);
  });

  test('when two requests use one recovery code at the same moment, then exactly one gets a session', async () => {
    const a = new Visitor(argos, { localAddress: '127.0.0.21' });
    const b = new Visitor(argos, { localAddress: '127.0.0.22' });
    for (const x of [a, b]) assert.equal((await x.login('dave', PASSWORDS.dave!, `${app}/`)).status, 303);
    const [ca, cb] = [await a.csrf('/login/2fa'), await b.csrf('/login/2fa')];
    const code = recovery[0]!;
    const results = await Promise.all([a.post(`${portal}/login/2fa`, { _csrf: ca, code }), b.post(`${portal}/login/2fa`, { _csrf: cb, code })]);
    const winners = results.filter((r) => r.status === 303 && sessionSet(r));
    assert.equal(winners.length, 1, `statuses ${results.map((r) => r.status)}`);
    const loser = results.find((r) => r !== winners[0])!;
    // 401 when it lost the database race, 429 when the per-user second-factor lock turned it away first.
    assert.ok([401, 429].includes(loser.status), `loser got ${loser.status}`);
    assert.equal(sessionSet(loser), undefined);
    // The code is spent for good; another one still works.
    const c = new Visitor(argos, { localAddress: '127.0.0.23' });
    assert.equal((await c.login('dave', PASSWORDS.dave!, `${app}/`)).status, 303);
    assert.equal((await c.secondFactor(code)).status, 401);
    assert.equal((await c.secondFactor(recovery[1]!)).status, 303);
  });

  test('when a TOTP user has passed only the password, then no host opens: not with the challenge cookie, nor with it passed off as a session', async () => {
    const b = new Visitor(argos, { localAddress: '127.0.0.31' });
    const r = await b.login('erin', PASSWORDS.erin!, `${app}/`);
    assert.equal(r.status, 303);
    assert.equal(sessionSet(r), undefined);
    const challenge = b.cookie('argos_2fa');
    assert.ok(challenge, 'a pending challenge cookie exists');
    for (const cookie of [`argos_2fa=${challenge}`, `argos_session=${challenge}`, `argos_2fa=${challenge}; argos_session=${challenge}`]) {
      for (const headers of [{ Accept: 'text/html' }, { Accept: 'application/json' }]) {
        const res = await argos.viaCaddy(`app.example.test:${argos.ports.caddy}`, '/', { headers: { ...headers, Cookie: cookie }, localAddress: '127.0.0.31' });
        assert.ok([302, 401].includes(res.status), `${cookie} (${headers.Accept}) → ${res.status}`);
      }
    }
    const account = await b.request(`${portal}/account`, { headers: { Cookie: `argos_session=${challenge}` } });
    assert.equal(account.status, 303, 'the portal does not treat the pending state as signed in');
  });

  test('when an attacker plants a session cookie before the victim signs in, then sign-in issues a new token and the planted one opens nothing', async () => {
    const b = new Visitor(argos, { localAddress: '127.0.0.41' });
    const planted = 'Pl4ntedByTheAttacker_0123456789abcdefghijk';
    b.setCookie('argos_session', planted, 'example.test', argos.portalHost);
    const r = await b.login('alice', PASSWORDS.alice!, `${app}/`);
    assert.equal(r.status, 303);
    const token = tokenOf(sessionSet(r));
    assert.ok(token && token !== planted, 'a fresh token');
    const withPlanted = await argos.viaCaddy(`app.example.test:${argos.ports.caddy}`, '/', {
      headers: { Accept: 'text/html', Cookie: `argos_session=${planted}` },
    });
    assert.equal(withPlanted.status, 302);
    assert.equal((await b.get(`${app}/`)).status, 200);
  });

  test('when a user logs out everywhere, then all their sessions stop passing within 2 seconds', async () => {
    const one = new Visitor(argos, { localAddress: '127.0.0.51' });
    const two = new Visitor(argos, { localAddress: '127.0.0.52', userAgent: 'Phone/1.0' });
    for (const b of [one, two]) assert.equal((await b.login('alice', PASSWORDS.alice!, `${app}/`)).status, 303);
    const tokens = [one.session(app)!, two.session(app)!];
    assert.notEqual(tokens[0], tokens[1]);
    const page = await one.get(`${portal}/account`);
    assert.equal(page.status, 200);
    assert.match(page.body, /Phone\/1\.0/, 'the account page lists the other device');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
    const out = await one.post(`${portal}/account/logout-everywhere`, { _csrf: csrf });
    assert.equal(out.status, 303);
    const at = Date.now();
    await waitFor(
      'both sessions refused',
      async () => {
        const rs = await Promise.all(
          tokens.map((t) => argos.viaCaddy(`app.example.test:${argos.ports.caddy}`, '/', { headers: { Accept: 'text/html', Cookie: `argos_session=${t}` } })),
        );
        return rs.every((r) => r.status === 302);
      },
      2000,
    );
    assert.ok(Date.now() - at <= 2000);
  });

  test('when an API token is scoped to host A, then host B refuses it and host A accepts it as Bearer', async () => {
    const created = JSON.parse(ok(argos.cli(['token', 'create', 'alice', '--name', 'x', '--hosts', 'tok-a.example.test', '--json'])));
    assert.match(created.token, /^argos_/);
    const bearer = { Authorization: `Bearer ${created.token}`, Accept: 'application/json' };
    const port = argos.ports.caddy;
    await waitFor(
      'token known to the gatekeeper',
      async () => (await argos.viaCaddy(`tok-a.example.test:${port}`, '/', { headers: bearer, localAddress: '127.0.0.61' })).status === 200,
      2000,
    );
    const onA = await argos.viaCaddy(`tok-a.example.test:${port}`, '/data', { headers: bearer, localAddress: '127.0.0.61' });
    assert.equal(onA.status, 200);
    assert.equal(JSON.parse(onA.body).headers['remote-user'], 'alice');
    assert.equal(JSON.parse(onA.body).headers.authorization, undefined, 'the Argos token Argos consumed never reaches the upstream (a compromised upstream cannot replay it)');
    const onB = await argos.viaCaddy(`tok-b.example.test:${port}`, '/data', { headers: bearer, localAddress: '127.0.0.61' });
    assert.equal(onB.status, 401, 'a token leaked from one app does not open another');
    const onApp = await argos.viaCaddy(`app.example.test:${port}`, '/data', { headers: bearer, localAddress: '127.0.0.61' });
    assert.equal(onApp.status, 401, 'a host that does not accept tokens refuses it');
  });

  test('when one client address fails the password 6 times, then it gets 429 with Retry-After (even with the right password), and another address still signs in', async () => {
    const attacker = new Visitor(argos, { localAddress: '127.0.0.71' });
    const csrf = await attacker.csrf(`/login?rd=${encodeURIComponent(`${app}/`)}`);
    const attempt = (password: string) => attacker.post(`${portal}/login`, { _csrf: csrf, username: 'alice', password, rd: `${app}/` });
    for (let i = 1; i <= 5; i++) assert.equal((await attempt(`guess-${i}-wrong`)).status, 401, `attempt ${i}`);
    const sixth = await attempt('guess-6-wrong');
    assert.equal(sixth.status, 429);
    const retry = Number(sixth.headers['retry-after']);
    assert.ok(retry > 0 && retry <= 900, `Retry-After: ${sixth.headers['retry-after']}`);
    const right = await attempt(PASSWORDS.alice!);
    assert.equal(right.status, 429, 'a banned client cannot test even the right password');
    assert.equal(sessionSet(right), undefined);

    const elsewhere = new Visitor(argos, { localAddress: '127.0.0.72' });
    const r = await elsewhere.login('alice', PASSWORDS.alice!, `${app}/`);
    assert.equal(r.status, 303, 'the real user is not locked out from everywhere');
    assert.ok(sessionSet(r));
    assert.equal((await elsewhere.get(`${app}/`)).status, 200);
  });

  test('when the visitor signs in for a host under a second cookie domain, then a one-time handoff sets that domain’s cookie and the app opens', async () => {
    const b = new Visitor(argos, { localAddress: '127.0.0.81' });
    const rd = `${other}/x?y=1`;
    const r = await b.login('alice', PASSWORDS.alice!, rd);
    assert.equal(r.status, 303);
    const handoff = new URL(r.headers.location!);
    assert.equal(handoff.origin, other);
    assert.equal(handoff.pathname, '/.argos/handoff');
    assert.ok(handoff.searchParams.get('t'));
    assert.equal(b.session(other), undefined, 'the portal cannot set a cookie for other.test');

    const h = await b.get(handoff.toString());
    assert.equal(h.status, 302, h.body.slice(0, 200));
    assert.equal(h.headers.location, rd);
    const cookie = sessionSet(h)!;
    assert.match(cookie, /^argos_session=[A-Za-z0-9_-]+; Path=\/; Domain=other\.test; HttpOnly; SameSite=Lax/);
    assert.notEqual(tokenOf(cookie), b.session(app), 'its own session, not the portal’s token');

    const seen = echo.requests.length;
    const page = await b.get(rd);
    assert.equal(page.status, 200, page.body.slice(0, 200));
    const got = JSON.parse(page.body);
    assert.equal(got.headers['remote-user'], 'alice');
    assert.equal(got.url, '/x?y=1');
    assert.ok(!String(got.headers.cookie ?? '').includes('argos_session'), 'the handed-off cookie stops at the gate too');
    assert.equal(echo.requests.length, seen + 1);

    const replay = await b.get(handoff.toString());
    assert.equal(replay.status, 403, 'a handoff token works once');
  });

  test('when a handoff token is redeemed from another client address, another browser or on another host, then it is refused', async () => {
    const fresh = async (addr: string) => {
      const b = new Visitor(argos, { localAddress: addr });
      const r = await b.login('alice', PASSWORDS.alice!, `${other}/x`);
      assert.equal(r.status, 303);
      return { b, url: new URL(r.headers.location!) };
    };
    const stolen = await fresh('127.0.0.91');
    const thief = new Visitor(argos, { localAddress: '127.0.0.92', userAgent: stolen.b.userAgent });
    const r1 = await thief.get(stolen.url.toString());
    assert.equal(r1.status, 403, 'another client address');
    assert.equal(sessionSet(r1), undefined);

    const copied = await fresh('127.0.0.93');
    const otherBrowser = new Visitor(argos, { localAddress: '127.0.0.93', userAgent: 'Another browser/2.0' });
    assert.equal((await otherBrowser.get(copied.url.toString())).status, 403, 'another browser on the same address');

    const moved = await fresh('127.0.0.94');
    const elsewhere = await moved.b.get(`${app}${moved.url.pathname}${moved.url.search}`);
    assert.equal(elsewhere.status, 403, 'another host');
    assert.equal(sessionSet(elsewhere), undefined);
  });

  test('when a one-factor user meets a two_factor host, then they are sent to enrollment (or refused when self-enrollment is off), and enrolling yields a new two-factor session', async () => {
    const b = new Visitor(argos, { localAddress: '127.0.0.101' });
    assert.equal((await b.login('gina', PASSWORDS.gina!, `${app}/`)).status, 303);
    const oneFactor = b.session(app)!;
    assert.equal((await b.get(`${app}/`)).status, 200);

    ok(argos.cli(['settings', 'set', 'totp.self_enroll', 'false']));
    await waitFor('self-enrollment off', async () => (await b.get(`${secure}/vault`)).status === 403, 2000);
    const refused = await b.get(`${secure}/vault`);
    assert.match(refused.body, /Two-factor authentication required/);

    ok(argos.cli(['settings', 'set', 'totp.self_enroll', 'true']));
    await waitFor('self-enrollment on', async () => (await b.get(`${secure}/vault`)).status === 302, 2000);
    const sent = await b.get(`${secure}/vault`);
    const enroll = new URL(sent.headers.location!);
    assert.equal(`${enroll.origin}${enroll.pathname}`, `${portal}/account/totp`);
    assert.equal(enroll.searchParams.get('rd'), `${secure}/vault`);

    const page = await b.get(enroll.toString());
    assert.equal(page.status, 200);
    const secret = /<code class="secret">([A-Z2-7]+)<\/code>/.exec(page.body)?.[1];
    assert.ok(secret, 'the page shows the secret for manual entry');
    assert.match(page.body, /src="data:image\/png;base64,/, 'and a QR code');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
    const rd = /name="rd" value="([^"]*)"/.exec(page.body)![1]!.replace(/&amp;/g, '&');

    const wrong = await b.post(`${portal}/account/totp`, { _csrf: csrf, rd, code: String((Number(totpCode(secret)) + 1) % 1_000_000).padStart(6, '0') });
    assert.equal(wrong.status, 400, 'a wrong code does not enroll');
    const done = await b.post(`${portal}/account/totp`, { _csrf: csrf, rd, code: totpCode(secret) });
    assert.equal(done.status, 200, done.body.slice(0, 300));
    assert.equal((done.body.match(/<li><code>[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}<\/code><\/li>/g) ?? []).length, 10, 'ten recovery codes, shown once');
    const twoFactor = tokenOf(sessionSet(done));
    assert.ok(twoFactor && twoFactor !== oneFactor, 'a new session token after the second factor');

    const vault = await b.get(`${secure}/vault`);
    assert.equal(vault.status, 200);
    assert.equal(JSON.parse(vault.body).headers['remote-user'], 'gina');
    await waitFor(
      'the one-factor session is gone',
      async () =>
        (await argos.viaCaddy(`app.example.test:${argos.ports.caddy}`, '/', { headers: { Accept: 'text/html', Cookie: `argos_session=${oneFactor}` } }))
          .status === 302,
      2000,
    );
  });
});
