/**
 * Single sign-on, black-box: a real OpenID provider (oidc-provider 9 on loopback), the real panel and
 * gatekeeper, real Caddy, scripted browsers with their own cookie jars, and Debian Chromium.
 *
 * Stories: a visitor signs in with SSO and the upstream sees the provider's identity; every way a callback
 * can be wrong (replayed, from another browser, wrong nonce, wrong issuer, tampered, expired, wrong audience)
 * is refused, audited with its reason and shown as one vague message; the operator's e-mail policy and
 * provisioning choices hold; MFA asserted by the provider counts, otherwise Argos TOTP steps up; two
 * concurrent sign-ins never swap identities; an admin links their account and signs in to the panel with SSO,
 * while an IdP group never makes anyone an admin; SSO off (setting or ARGOS_OIDC_ENABLED=false) → SSO routes
 * 404 and SSO sessions stop passing, local login with TOTP keeps working; provider down → a clear error and
 * the password form still works.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import * as OTPAuth from 'otpauth';
import type { Browser } from 'playwright-core';
import { createArgos, freePort, rawRequest, startEcho, waitFor, ROOT, TSX, type Argos } from '../lib/argos.ts';
import { decodeJwt, defaultAccount, startIdp, type Idp, type IdpClaims } from '../lib/idp.ts';
import { CookieJarBrowser, field } from '../lib/jar.ts';
import { launchChromium, screenshot, shot } from '../lib/chromium.ts';

const VAGUE = 'Single sign-on did not succeed. Try again, or sign in with your password.';
const PASSWORD = 'wonderland-2026-pass';

const totp = (secret: string) => new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30, algorithm: 'SHA1' }).generate();
async function freshCode(secret: string, used: Set<string>): Promise<string> {
  for (;;) {
    const c = totp(secret);
    if (!used.has(c)) {
      used.add(c);
      return c;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Claims per login name at the test IdP. */
function account(login: string): IdpClaims {
  const base = defaultAccount(login);
  switch (login) {
    case 'alice':
      return { ...base, name: 'Alice Liddell', groups: ['family', 'Media Users', 'admins'] };
    case 'mallory':
      return { ...base, email_verified: false };
    case 'eve':
      return { ...base, email: 'eve@evil.test' };
    case 'trick-at':
      return { ...base, email: 'x@evil@example.test' };
    case 'trick-suffix':
      return { ...base, email: 'x@example.test.evil.test' };
    case 'trick-upper':
      return { ...base, email: 'X@EXAMPLE.TEST.EVIL.TEST' };
    case 'trick-cyrillic':
      return { ...base, email: 'x@exаmple.test' };
    case 'trick-fullwidth':
      return { ...base, email: 'x@ｅxample.test' };
    case 'trick-nul':
      return { ...base, email: 'x@example.test\u0000.evil.test' };
    case 'mfa-user':
      return { ...base, amr: ['pwd', 'mfa'] };
    case 'boss-idp':
      return { ...base, email: 'boss@example.test', groups: [] };
    default:
      return base;
  }
}

describe('single sign-on with an external OpenID provider', () => {
  let argos: Argos;
  let idp: Idp;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let chromium: Browser;
  let portal: string;
  let app: string;
  let secure: string;
  let panelIp: string;
  let panelHost: string;
  let carolSecret: string;
  const used = new Set<string>();
  const timings: Record<string, number> = {};

  const ok = (r: { code: number; stdout: string; stderr: string }) => {
    assert.equal(r.code, 0, r.stderr || r.stdout);
    return r.stdout;
  };
  const setting = (key: string, value: string) => ok(argos.cli(['settings', 'set', key, value]));
  /** Audit entries for an action, newest first. */
  const audits = (action: string) =>
    (
      JSON.parse(ok(argos.cli(['audit', 'list', '--action', action, '--limit', '200', '--json']))) as {
        entries: Array<{ action: string; actor: string; target: string; details: Record<string, unknown> }>;
      }
    ).entries;
  /** The refusals audited since `t0` (epoch ms), oldest first. */
  const refusalsSince = (t0: number, action = 'portal.oidc.refused') =>
    (
      JSON.parse(ok(argos.cli(['audit', 'list', '--action', action, '--since', String(t0), '--json']))) as {
        entries: Array<{ details: Record<string, unknown> }>;
      }
    ).entries
      .map((e) => String(e.details.reason))
      .reverse();
  /** Exactly one refusal was audited since `t0`: its reason. */
  const lastRefusal = (t0: number, action = 'portal.oidc.refused') => {
    const reasons = refusalsSince(t0, action);
    assert.equal(reasons.length, 1, `exactly one ${action} audit entry (${reasons.join(', ')})`);
    return reasons[0]!;
  };
  /** Settings reach the gatekeeper through the change counter (polled every 250 ms). */
  const settled = () => new Promise((r) => setTimeout(r, 700));

  /** Portal SSO up to (not including) the callback: returns the callback URL the provider sent the browser to. */
  async function toCallback(b: CookieJarBrowser, login: string, rd: string): Promise<string> {
    const page = await b.request(`${portal}/login?rd=${encodeURIComponent(rd)}`);
    assert.equal(page.status, 200);
    const isCallback = (n: string) => n.startsWith(`${portal}/oidc/callback`);
    const atIdp = await b.follow(`${portal}/oidc/start`, { form: { _csrf: field(page.body, '_csrf')!, rd }, stopBefore: isCallback });
    if (atIdp.next) return atIdp.next; // the provider already knows this browser: straight back
    assert.equal(atIdp.status, 200, `IdP login page: ${atIdp.body.slice(0, 300)}`);
    const action = /<form[^>]*action="([^"]+)"/.exec(atIdp.body)![1]!;
    const back = await b.follow(new URL(action, atIdp.url).toString(), { form: { prompt: 'login', login, password: 'any-password' }, stopBefore: isCallback });
    assert.ok(back.next, `the provider redirected to the callback (${back.status} ${back.chain.join(' → ')})`);
    return back.next!;
  }

  /** A whole portal SSO sign-in with a fresh jar; returns the final response and the jar. */
  async function ssoLogin(login: string, rd = `${app}/`) {
    const b = new CookieJarBrowser();
    const callback = await toCallback(b, login, rd);
    const res = await b.follow(callback);
    return { b, res, callback };
  }

  before(async () => {
    echo = await startEcho();
    argos = await createArgos({ ARGOS_TRUSTED_PROXIES: '127.0.0.1/32' });
    portal = `http://${argos.portalHost}:${argos.ports.caddy}`;
    app = `http://app.example.test:${argos.ports.caddy}`;
    secure = `http://secure.example.test:${argos.ports.caddy}`;
    panelIp = `http://127.0.0.1:${argos.ports.panel}`;
    panelHost = `http://panel.example.test:${argos.ports.panel}`;
    idp = await startIdp({
      redirectUris: [`${portal}/oidc/callback`, `${panelIp}/login/oidc/callback`, `${panelHost}/login/oidc/callback`],
      postLogoutRedirectUris: [`${portal}/login`, `${panelIp}/login`, `${panelHost}/login`],
      account,
    });
    const up = `http://127.0.0.1:${echo.port}`;
    ok(argos.cli(['host', 'add', 'app.example.test', '--upstream', up, '--tls', 'off', '--policy', 'one_factor']));
    ok(argos.cli(['host', 'add', 'secure.example.test', '--upstream', up, '--tls', 'off', '--policy', 'two_factor']));
    ok(argos.cli(['user', 'add', 'carol', '--password-stdin', '--email', 'carol@example.test'], `${PASSWORD}\n`));
    carolSecret = JSON.parse(ok(argos.cli(['user', 'totp', 'enroll', 'carol', '--json']))).secret;
    ok(argos.cli(['admin', 'create', 'boss', '--password-stdin', '--email', 'boss@example.test'], `${PASSWORD}\n`));
    // Scripted setup, as the README shows it: settings and the secret from the CLI (the secret on stdin only).
    setting('oidc.issuer', idp.issuer);
    setting('oidc.client_id', idp.clientId);
    ok(argos.cli(['secret', 'set', 'oidc.client_secret', '--stdin'], idp.clientSecret));
    setting('oidc.scopes', 'openid email profile groups');
    setting('oidc.allowed_domains', 'example.test');
    setting('oidc.auto_provision', 'true');
    setting('oidc.button_label', 'Sign in with Example ID');
    setting('oidc.enabled', 'true');
    await argos.start();
    chromium = await launchChromium();
  });

  after(async () => {
    await chromium?.close();
    await argos?.stop();
    await idp?.stop().catch(() => undefined);
    await echo?.close();
    if (Object.keys(timings).length) console.log(`# SSO timings (ms): ${JSON.stringify(timings)}`);
  });

  test('the portal and the panel sign-in pages offer the SSO button next to the password form', async () => {
    const b = new CookieJarBrowser();
    const p = await b.request(`${portal}/login`);
    assert.match(p.body, /action="\/oidc\/start"/);
    assert.match(p.body, /Sign in with Example ID/);
    assert.match(p.body, /name="password"/);
    const q = await b.request(`${panelIp}/login`);
    assert.match(q.body, /action="\/login\/oidc\/start"/);
    assert.match(q.body, /Sign in with Example ID/);
  });

  test('happy path in Chromium: app → portal → "Sign in with …" → provider → back at the app, whose upstream sees the IdP identity', async () => {
    const ctx = await chromium.newContext();
    const page = await ctx.newPage();
    const t0 = Date.now();
    await page.goto(`${app}/library?item=7`);
    assert.ok(page.url().startsWith(`${portal}/login`), page.url());
    await screenshot(page, { path: shot('sso-portal-login') });
    await Promise.all([page.waitForURL((u) => u.href.startsWith(idp.issuer)), page.click('form[action="/oidc/start"] button')]);
    await page.fill('input[name=login]', 'alice');
    await page.fill('input[name=password]', 'anything');
    await Promise.all([page.waitForURL(`${app}/library?item=7`), page.click('button[type=submit]')]);
    timings.chromiumSsoLogin = Date.now() - t0;
    const seen = JSON.parse((await page.textContent('body'))!);
    assert.equal(seen.upstream, 'echo');
    assert.equal(seen.headers['remote-user'], 'alice');
    assert.equal(seen.headers['remote-email'], 'alice@example.test');
    assert.equal(seen.headers['remote-name'], 'Alice Liddell');
    assert.equal(seen.headers['remote-groups'], 'admins,family,media-users', 'IdP groups mapped into Argos groups');
    assert.ok(!String(seen.headers.cookie ?? '').includes('argos_session'));
    const provisioned = audits('user.oidc.provision').find((e) => e.target === 'alice');
    assert.ok(provisioned, 'the new user was provisioned, audited');
    assert.equal((provisioned!.details as { issuer?: string }).issuer, idp.issuer);
    const users = JSON.parse(ok(argos.cli(['user', 'list', '--json']))) as Array<{ username: string; isAdmin: boolean; sso: boolean }>;
    const alice = users.find((u) => u.username === 'alice')!;
    assert.equal(alice.isAdmin, false, 'an "admins" group at the IdP grants no admin rights');
    assert.equal(alice.sso, true);
    await ctx.close();
  });

  test('two concurrent sign-ins in two browser contexts each end as their own user', async () => {
    const [a, b] = [await chromium.newContext(), await chromium.newContext()];
    const [pa, pb] = [await a.newPage(), await b.newPage()];
    for (const p of [pa, pb]) {
      await p.goto(`${app}/whoami`);
      await Promise.all([p.waitForURL((u) => u.href.startsWith(idp.issuer)), p.click('form[action="/oidc/start"] button')]);
    }
    // Both attempts are pending at the provider; finish the second one first.
    await pb.fill('input[name=login]', 'bob');
    await pb.fill('input[name=password]', 'x');
    await pa.fill('input[name=login]', 'alex');
    await pa.fill('input[name=password]', 'x');
    await Promise.all([pb.waitForURL(`${app}/whoami`), pb.click('button[type=submit]')]);
    await Promise.all([pa.waitForURL(`${app}/whoami`), pa.click('button[type=submit]')]);
    assert.equal(JSON.parse((await pa.textContent('body'))!).headers['remote-user'], 'alex');
    assert.equal(JSON.parse((await pb.textContent('body'))!).headers['remote-user'], 'bob');
    await a.close();
    await b.close();
  });

  test('two tabs of one browser: both pending sign-ins complete, each with its own state', async () => {
    const b = new CookieJarBrowser();
    const first = await toCallback(b, 'tabby', `${app}/one`);
    const second = await toCallback(b, 'tabby', `${app}/two`);
    assert.notEqual(new URL(first).searchParams.get('state'), new URL(second).searchParams.get('state'));
    const r2 = await b.follow(second);
    assert.equal(r2.url, `${app}/two`);
    const r1 = await b.follow(first);
    assert.equal(r1.url, `${app}/one`);
    assert.equal(JSON.parse(r1.body).headers['remote-user'], 'tabby');
  });

  test('a replayed callback (same state twice) is refused, audited, and shown vaguely', async () => {
    const t0 = Date.now();
    const { b, res, callback } = await ssoLogin('replay-user');
    timings.scriptedSsoLogin = Date.now() - t0;
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).headers['remote-user'], 'replay-user');
    const n = Date.now();
    const again = await b.request(callback);
    assert.equal(again.status, 403);
    assert.ok(again.body.includes(VAGUE), again.body.slice(0, 400));
    assert.ok(!again.headers['set-cookie']?.some((c) => c.startsWith('argos_session=') && !c.includes('Max-Age=0')), 'no session from a replay');
    assert.equal(lastRefusal(n), 'unknown_state');
  });

  test('a callback carrying a state that another browser started is refused', async () => {
    const victim = new CookieJarBrowser();
    const callback = await toCallback(victim, 'victim', `${app}/`);
    const attacker = new CookieJarBrowser();
    await attacker.request(`${portal}/login`);
    const n = Date.now();
    const r = await attacker.request(callback);
    assert.equal(r.status, 403);
    assert.ok(r.body.includes(VAGUE));
    assert.equal(lastRefusal(n), 'browser_mismatch');
    // An attacker who started a sign-in of their own (so has the SSO cookie) fares no better.
    const attacker2 = new CookieJarBrowser();
    const own = await toCallback(attacker2, 'attacker', `${app}/`);
    const victim2 = new CookieJarBrowser();
    const stolen = await toCallback(victim2, 'victim2', `${app}/`);
    const m = Date.now();
    assert.equal((await attacker2.request(stolen)).status, 403);
    assert.equal(lastRefusal(m), 'browser_mismatch');
    assert.equal((await attacker2.follow(own)).status, 200, "the attacker's own flow still works: nothing was swapped");
  });

  /** Runs one sign-in with a token hook installed and returns the refusal reason. */
  async function refusedWith(hook: Idp['tokenHook'], login = 'hooked'): Promise<string> {
    const n = Date.now();
    idp.tokenHook = hook;
    try {
      const { res } = await ssoLogin(login);
      assert.equal(res.status, 403, res.body.slice(0, 300));
      assert.ok(res.body.includes(VAGUE));
      assert.ok(res.body.includes('name="password"'), 'the password form is right there');
    } finally {
      idp.tokenHook = null;
    }
    return lastRefusal(n);
  }

  test('an ID token whose nonce is not the one this sign-in sent is refused (signed by the IdP all the same)', async () => {
    assert.equal(await refusedWith((p) => ({ payload: { ...p, nonce: 'a-nonce-from-another-sign-in' } })), 'nonce_mismatch');
  });

  test('a wrong issuer is refused: in the authorization response (iss) and in the ID token', async () => {
    const b = new CookieJarBrowser();
    const callback = new URL(await toCallback(b, 'mixup', `${app}/`));
    assert.equal(callback.searchParams.get('iss'), idp.issuer, 'the provider sends iss');
    callback.searchParams.set('iss', 'https://evil.example.test');
    const n = Date.now();
    const r = await b.request(callback.toString());
    assert.equal(r.status, 403);
    assert.equal(lastRefusal(n), 'issuer_mismatch');
    assert.equal(await refusedWith((p) => ({ payload: { ...p, iss: 'https://evil.example.test' } })), 'issuer_mismatch');
  });

  test('a tampered ID token (claims changed, signature kept) is refused; so is one minted for another client', async () => {
    const tampered = (p: Record<string, unknown>, raw: string) => {
      const [h, , s] = raw.split('.');
      return { raw: `${h}.${Buffer.from(JSON.stringify({ ...p, sub: 'boss-idp' })).toString('base64url')}.${s}` };
    };
    assert.equal(await refusedWith(tampered), 'id_token_signature');
    assert.equal(await refusedWith((p) => ({ payload: { ...p, aud: 'another-client' } })), 'audience_mismatch');
    const forged = (p: Record<string, unknown>) => {
      const { header } = decodeJwt(idp.sign(p));
      return {
        raw: `${Buffer.from(JSON.stringify({ ...header, alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(p)).toString('base64url')}.`,
      };
    };
    assert.equal(await refusedWith(forged), 'id_token_signature', 'an unsigned (alg none) token is refused');
  });

  test('an expired ID token is refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    assert.equal(await refusedWith((p) => ({ payload: { ...p, iat: now - 7200, exp: now - 3600 } })), 'id_token_expired');
  });

  test('email_verified=false is refused while the setting requires it', async () => {
    const n = Date.now();
    const { res } = await ssoLogin('mallory');
    assert.equal(res.status, 403);
    assert.ok(res.body.includes(VAGUE));
    assert.equal(lastRefusal(n), 'email_unverified');
  });

  test('a domain outside the allow-list, and every tricky address form, is refused and creates nobody', async () => {
    const expected: Record<string, string> = {
      eve: 'email_not_allowed',
      'trick-at': 'email_invalid',
      'trick-suffix': 'email_not_allowed',
      'trick-upper': 'email_not_allowed',
      'trick-cyrillic': 'email_not_allowed',
      'trick-fullwidth': 'email_invalid',
      'trick-nul': 'email_invalid',
    };
    const t0 = Date.now();
    for (const login of Object.keys(expected)) {
      const { res } = await ssoLogin(login);
      assert.equal(res.status, 403, login);
      assert.ok(res.body.includes(VAGUE), login);
    }
    assert.deepEqual(refusalsSince(t0), Object.values(expected));
    const names = (JSON.parse(ok(argos.cli(['user', 'list', '--json']))) as Array<{ username: string }>).map((u) => u.username);
    for (const login of Object.keys(expected)) assert.ok(!names.some((u) => u.startsWith(login) || u === 'x'), `${login} was not provisioned`);
  });

  test('with auto-provisioning off, someone the provider knows but Argos does not is refused', async () => {
    setting('oidc.auto_provision', 'false');
    await settled();
    try {
      const n = Date.now();
      const { res } = await ssoLogin('newbie');
      assert.equal(res.status, 403);
      assert.equal(lastRefusal(n), 'no_account');
      const known = await ssoLogin('alice');
      assert.equal(known.res.status, 200, 'an already linked user still signs in');
    } finally {
      setting('oidc.auto_provision', 'true');
      await settled();
    }
  });

  test('identity is (issuer, sub), never e-mail alone: a local user is linked only when the operator allows it, and then steps up with Argos TOTP', async () => {
    let n = Date.now();
    const first = await ssoLogin('carol');
    assert.equal(first.res.status, 403, 'carol@example.test belongs to a local user: no second account, no silent link');
    assert.equal(lastRefusal(n), 'email_taken');

    setting('oidc.link_existing', 'true');
    await settled();
    try {
      const b = new CookieJarBrowser();
      const callback = await toCallback(b, 'carol', `${secure}/vault`);
      const step = await b.follow(callback);
      assert.equal(step.status, 200);
      assert.equal(new URL(step.url).pathname, '/oidc/2fa', 'no IdP MFA: Argos TOTP is asked');
      assert.ok(
        audits('user.oidc.link').some((e) => e.target === 'carol'),
        'the link is audited',
      );
      const wrong = await b.request(`${portal}/oidc/2fa`, { form: { _csrf: field(step.body, '_csrf')!, code: '000000' } });
      assert.equal(wrong.status, 401);
      const done = await b.follow(`${portal}/oidc/2fa`, { form: { _csrf: field(wrong.body, '_csrf')!, code: await freshCode(carolSecret, used) } });
      assert.equal(done.status, 200, done.body.slice(0, 300));
      assert.equal(done.url, `${secure}/vault`);
      assert.equal(JSON.parse(done.body).headers['remote-user'], 'carol', 'SSO + Argos TOTP satisfies a two_factor host');
      // An admin's e-mail address never links: a compromised provider must not be able to take over an admin.
      n = Date.now();
      const adminTry = await ssoLogin('boss-idp');
      assert.equal(adminTry.res.status, 403);
      assert.equal(lastRefusal(n), 'link_refused_admin');
    } finally {
      setting('oidc.link_existing', 'false');
      await settled();
    }
  });

  test('two_factor hosts: MFA asserted by the provider (amr) counts; a one-factor SSO session is sent to enrollment', async () => {
    const mfa = await ssoLogin('mfa-user', `${secure}/`);
    assert.equal(mfa.res.status, 200, mfa.res.body.slice(0, 300));
    assert.equal(JSON.parse(mfa.res.body).headers['remote-user'], 'mfa-user');
    const plain = await ssoLogin('plain-user', `${app}/`);
    assert.equal(plain.res.status, 200);
    const r = await plain.b.request(`${secure}/`);
    assert.equal(r.status, 302);
    assert.match(r.location ?? '', /\/account\/totp/);
    // With trust in the provider's MFA switched off, even an amr=mfa sign-in is one factor.
    setting('oidc.trust_idp_mfa', 'false');
    await settled();
    try {
      const again = await ssoLogin('mfa-user', `${secure}/`);
      assert.equal(new URL(again.res.url).pathname, '/account/totp', 'one factor: sent to enrollment, not to the host');
    } finally {
      setting('oidc.trust_idp_mfa', 'true');
      await settled();
    }
  });

  test('panel: an IdP user who is not an Argos admin is refused, whatever groups the provider claims', async () => {
    const b = new CookieJarBrowser();
    const page = await b.request(`${panelIp}/login`);
    const atIdp = await b.follow(`${panelIp}/login/oidc/start`, { form: { _csrf: field(page.body, '_csrf')!, next: '/' } });
    assert.equal(atIdp.status, 200, atIdp.body.slice(0, 200));
    const action = /<form[^>]*action="([^"]+)"/.exec(atIdp.body)![1]!;
    const n = Date.now();
    const res = await b.follow(new URL(action, atIdp.url).toString(), { form: { prompt: 'login', login: 'alice', password: 'x' } });
    assert.equal(res.status, 403);
    assert.ok(res.body.includes(VAGUE));
    assert.equal(lastRefusal(n, 'panel.oidc.refused'), 'not_admin', 'alice is an Argos user (with an IdP "admins" group) but not an admin');
    assert.equal(b.cookie(`${panelIp}/`, 'argos_panel'), null);
  });

  test('panel in Chromium: an admin links their account, then signs in with SSO (+ their TOTP when they have one); SSO off ends that session', async () => {
    const ctx = await chromium.newContext();
    const page = await ctx.newPage();
    await page.goto(`${panelHost}/login`);
    await page.fill('input[name=username]', 'boss');
    await page.fill('input[name=password]', PASSWORD);
    await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('form[action="/login"] button[type=submit]')]);
    await page.goto(`${panelHost}/settings/oidc`);
    assert.ok(await page.isVisible(`text=${portal}/oidc/callback`), 'the portal redirect URI is shown');
    assert.ok(await page.isVisible(`text=${panelHost}/login/oidc/callback`), 'the panel redirect URI is shown');
    assert.ok(await page.isVisible('button.copy >> nth=0'), 'copy buttons appear with JavaScript');
    await screenshot(page, { path: shot('sso-panel-settings') });
    await page.click('form[action="/settings/oidc/test"] button');
    assert.ok(await page.isVisible('text=Discovery succeeded'), 'Test connection ran discovery');
    assert.ok(await page.isVisible(`text=${idp.issuer}/token`), 'and shows what the provider advertises');
    // Saving the form with the secret field blank keeps the stored secret (SSO below still works with it).
    assert.equal(await page.inputValue('#f-client_secret'), '', 'the secret is never shown');
    await Promise.all([page.waitForURL(`${panelHost}/settings/oidc?done=saved`), page.click('form[action="/settings/oidc"] button[type=submit]')]);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(idp.issuer)), page.click('form[action="/settings/oidc/link"] button')]);
    await page.fill('input[name=login]', 'boss-idp');
    await page.fill('input[name=password]', 'x');
    await Promise.all([page.waitForURL(`${panelHost}/settings/oidc?done=linked`), page.click('button[type=submit]')]);
    assert.ok(await page.isVisible('text=now linked'));
    await Promise.all([page.waitForURL((u) => u.pathname === '/login'), page.click('header form[action="/logout"] button')]);

    // The provider remembers boss-idp: SSO goes straight back. The last hop is a same-site navigation, so the
    // SameSite=Strict panel cookie is sent and the dashboard opens.
    const t0 = Date.now();
    await Promise.all([page.waitForURL(`${panelHost}/`), page.click('form[action="/login/oidc/start"] button')]);
    timings.chromiumPanelSso = Date.now() - t0;
    assert.ok(await page.isVisible('header >> text=boss'), 'signed in to the panel as boss');
    assert.ok(audits('panel.login.success').some((e) => e.target === 'boss' && e.details.method === 'oidc'));

    setting('oidc.enabled', 'false');
    await waitFor(
      'SSO panel session refused',
      async () => {
        await page.goto(`${panelHost}/hosts`);
        return new URL(page.url()).pathname === '/login';
      },
      5000,
    );
    assert.equal(await page.isVisible('form[action="/login/oidc/start"]'), false, 'no SSO button while SSO is off');
    assert.equal((await rawRequest({ port: argos.ports.panel, path: '/login/oidc/callback?state=x&code=y' })).status, 404);
    setting('oidc.enabled', 'true');
    await settled();
    await ctx.close();

    // With TOTP on the admin account, panel SSO always asks for the code (the panel does not take the IdP's word for MFA).
    const secret = JSON.parse(ok(argos.cli(['user', 'totp', 'enroll', 'boss', '--json']))).secret as string;
    const c2 = await chromium.newContext();
    const p2 = await c2.newPage();
    await p2.goto(`${panelHost}/login`);
    await Promise.all([p2.waitForURL((u) => u.href.startsWith(idp.issuer)), p2.click('form[action="/login/oidc/start"] button')]);
    await p2.fill('input[name=login]', 'boss-idp');
    await p2.fill('input[name=password]', 'x');
    await Promise.all([p2.waitForURL(`${panelHost}/login/oidc/callback**`), p2.click('button[type=submit]')]);
    assert.ok(await p2.isVisible('text=Two-factor authentication'));
    await p2.fill('input[name=code]', await freshCode(secret, used));
    await Promise.all([p2.waitForURL(`${panelHost}/`), p2.click('form[action="/login/oidc/2fa"] button[type=submit]')]);
    assert.ok(await p2.isVisible('header >> text=boss'));
    await c2.close();
  });

  test('SSO off by setting: SSO routes 404, SSO sessions stop passing, password sessions keep working', async () => {
    const sso = await ssoLogin('switch-user');
    assert.equal(sso.res.status, 200);
    const pw = new CookieJarBrowser();
    const page = await pw.request(`${portal}/login?rd=${encodeURIComponent(`${app}/`)}`);
    const login = await pw.follow(`${portal}/login`, { form: { _csrf: field(page.body, '_csrf')!, username: 'carol', password: PASSWORD, rd: `${app}/` } });
    assert.equal(new URL(login.url).pathname, '/login/2fa');
    const in2 = await pw.follow(`${portal}/login/2fa`, { form: { _csrf: field(login.body, '_csrf')!, code: await freshCode(carolSecret, used) } });
    assert.equal(in2.status, 200);

    setting('oidc.enabled', 'false');
    try {
      await waitFor('SSO session refused within 2 s', async () => (await sso.b.request(`${app}/`)).status === 302, 2000);
      assert.equal((await pw.request(`${app}/`)).status, 200, 'a password session is untouched');
      for (const p of ['/oidc/start', '/oidc/callback?state=a&code=b', '/oidc/2fa']) {
        const r = await sso.b.request(`${portal}${p}`, p === '/oidc/start' ? { form: { _csrf: 'x' } } : {});
        assert.equal(r.status, 404, p);
      }
      assert.ok(!(await sso.b.request(`${portal}/login`)).body.includes('/oidc/start'), 'no SSO button');
    } finally {
      setting('oidc.enabled', 'true');
      await settled();
    }
    assert.equal((await sso.b.request(`${app}/`)).status, 200, 'back on: the SSO session passes again');
  });

  test('ARGOS_OIDC_ENABLED=false wins over the setting: a gatekeeper started with it refuses SSO sessions and 404s SSO routes', async () => {
    const sso = await ssoLogin('env-user');
    assert.equal(sso.res.status, 200);
    const cookie = `argos_session=${sso.b.cookie(`${app}/`, 'argos_session')}`;
    const port = await freePort();
    const child: ChildProcess = spawn(process.execPath, ['--import', TSX, path.join(ROOT, 'services/gatekeeper/src/main.ts')], {
      env: { ...argos.env, ARGOS_OIDC_ENABLED: 'false', ARGOS_GATEKEEPER_LISTEN: `127.0.0.1:${port}` },
      cwd: argos.dataDir,
      stdio: 'ignore',
    });
    try {
      await waitFor('second gatekeeper', async () => (await rawRequest({ port, path: '/healthz' })).status === 200, 30_000);
      const verify = (gk: number) =>
        rawRequest({
          port: gk,
          path: '/verify',
          headers: {
            'X-Forwarded-Method': 'GET',
            'X-Forwarded-Proto': 'http',
            'X-Forwarded-Host': `app.example.test:${argos.ports.caddy}`,
            'X-Forwarded-Uri': '/',
            Accept: 'text/html',
            Cookie: cookie,
          },
        });
      assert.equal((await verify(argos.ports.gatekeeper)).status, 200, 'the normal gatekeeper lets the SSO session through');
      assert.equal((await verify(port)).status, 302, 'with ARGOS_OIDC_ENABLED=false it does not');
      assert.equal((await rawRequest({ port, path: '/oidc/callback?state=a&code=b', host: `${argos.portalHost}:${argos.ports.caddy}` })).status, 404);
      assert.equal((await rawRequest({ port, path: '/oidc/start', method: 'POST', host: `${argos.portalHost}:${argos.ports.caddy}` })).status, 404);
    } finally {
      child.kill('SIGTERM');
    }
  });

  test('RP-initiated logout: signing out of an SSO session ends it and continues at the provider', async () => {
    setting('oidc.rp_logout', 'true');
    await settled();
    try {
      const { b } = await ssoLogin('leaver');
      const home = await b.request(`${portal}/logout`);
      const out = await b.request(`${portal}/logout`, { form: { _csrf: field(home.body, '_csrf')! } });
      assert.equal(out.status, 303);
      const to = new URL(out.location!);
      assert.equal(`${to.origin}${to.pathname}`, `${idp.issuer}/session/end`);
      assert.equal(to.searchParams.get('post_logout_redirect_uri'), `${portal}/login`);
      assert.ok(to.searchParams.get('id_token_hint'), 'id_token_hint sent');
      assert.equal((await b.request(`${app}/`)).status, 302, 'the Argos session is over');
      const confirm = await b.follow(out.location!);
      assert.equal(confirm.status, 200, 'the provider asks to confirm its own sign-out');

      // The panel does the same for an admin's SSO session (boss has TOTP: a recovery code completes the step).
      const codes = JSON.parse(ok(argos.cli(['user', 'recovery-codes', 'boss', '--json']))).recovery_codes as string[];
      const pb = new CookieJarBrowser();
      const lp = await pb.request(`${panelIp}/login`);
      const atIdp = await pb.follow(`${panelIp}/login/oidc/start`, { form: { _csrf: field(lp.body, '_csrf')!, next: '/' } });
      const action = /<form[^>]*action="([^"]+)"/.exec(atIdp.body)![1]!;
      const step = await pb.follow(new URL(action, atIdp.url).toString(), { form: { prompt: 'login', login: 'boss-idp', password: 'x' } });
      assert.match(step.body, /Two-factor authentication/);
      const dash = await pb.follow(`${panelIp}/login/oidc/2fa`, { form: { _csrf: field(step.body, '_csrf')!, code: codes[0]! } });
      assert.equal(dash.status, 200);
      assert.ok(pb.cookie(`${panelIp}/`, 'argos_panel'));
      const bye = await pb.request(`${panelIp}/logout`, { form: { _csrf: field(dash.body, '_csrf')! } });
      assert.equal(bye.status, 303);
      const end = new URL(bye.location!);
      assert.equal(`${end.origin}${end.pathname}`, `${idp.issuer}/session/end`);
      assert.equal(end.searchParams.get('post_logout_redirect_uri'), `${panelIp}/login`);
      assert.equal((await pb.request(`${panelIp}/hosts`)).status, 302, 'the panel session is over');
    } finally {
      setting('oidc.rp_logout', 'false');
      await settled();
    }
  });

  test('provider down: a clear error page with the password form, and local sign-in still works (portal and panel)', async () => {
    await idp.stop();
    const b = new CookieJarBrowser();
    const page = await b.request(`${portal}/login?rd=${encodeURIComponent(`${app}/`)}`);
    const t0 = Date.now();
    const r = await b.request(`${portal}/oidc/start`, { form: { _csrf: field(page.body, '_csrf')!, rd: `${app}/` } });
    timings.idpDownError = Date.now() - t0;
    assert.equal(r.status, 503);
    assert.match(r.body, /could not reach the identity provider/);
    assert.match(r.body, /name="password"/);
    assert.ok(audits('portal.oidc.unavailable').length >= 1);
    const login = await b.follow(`${portal}/login`, { form: { _csrf: field(r.body, '_csrf')!, username: 'carol', password: PASSWORD, rd: `${app}/` } });
    assert.equal(new URL(login.url).pathname, '/login/2fa', 'password accepted; TOTP next');
    // A recovery code instead of waiting for the next TOTP step (local TOTP is covered by the break-glass suite).
    const [code] = JSON.parse(ok(argos.cli(['user', 'recovery-codes', 'carol', '--json']))).recovery_codes as string[];
    const done = await b.follow(`${portal}/login/2fa`, { form: { _csrf: field(login.body, '_csrf')!, code: code! } });
    assert.equal(done.status, 200);
    assert.equal(JSON.parse(done.body).headers['remote-user'], 'carol');

    const pb = new CookieJarBrowser();
    const pl = await pb.request(`${panelIp}/login`);
    const ps = await pb.request(`${panelIp}/login/oidc/start`, { form: { _csrf: field(pl.body, '_csrf')!, next: '/' } });
    assert.equal(ps.status, 503);
    assert.match(ps.body, /could not reach the identity provider/);
    const pw = await pb.request(`${panelIp}/login`, { form: { _csrf: field(ps.body, '_csrf')!, username: 'boss', password: PASSWORD, next: '/' } });
    assert.equal(pw.status, 303, 'the password is accepted (TOTP next)');
  });
});

describe('ARGOS_OIDC_ENABLED=false (break glass), whatever the settings say', () => {
  let argos: Argos;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let secret: string;

  before(async () => {
    echo = await startEcho();
    argos = await createArgos({ ARGOS_TRUSTED_PROXIES: '127.0.0.1/32', ARGOS_OIDC_ENABLED: 'false' });
    const run = (args: string[], stdin?: string) => assert.equal(argos.cli(args, stdin).code, 0, args.join(' '));
    run(['host', 'add', 'secure.example.test', '--upstream', `http://127.0.0.1:${echo.port}`, '--tls', 'off', '--policy', 'two_factor']);
    run(['admin', 'create', 'root', '--password-stdin'], `${PASSWORD}\n`);
    secret = JSON.parse(argos.cli(['user', 'totp', 'enroll', 'root', '--json']).stdout).secret;
    for (const [k, v] of [
      ['oidc.issuer', 'https://idp.example.test'],
      ['oidc.client_id', 'argos'],
      ['oidc.enabled', 'true'],
    ])
      run(['settings', 'set', k!, v!]);
    await argos.start();
  });

  after(async () => {
    await argos?.stop();
    await echo?.close();
  });

  test('every SSO route answers 404 and no SSO button is shown', async () => {
    const portal = `${argos.portalHost}:${argos.ports.caddy}`;
    for (const [method, p] of [
      ['POST', '/oidc/start'],
      ['GET', '/oidc/callback?state=a&code=b'],
      ['GET', '/oidc/2fa'],
      ['POST', '/oidc/2fa'],
    ] as const) {
      assert.equal((await argos.viaCaddy(portal, p, { method, headers: { Accept: 'text/html' } })).status, 404, `portal ${method} ${p}`);
    }
    for (const [method, p] of [
      ['POST', '/login/oidc/start'],
      ['GET', '/login/oidc/callback?state=a&code=b'],
      ['POST', '/login/oidc/2fa'],
    ] as const) {
      assert.equal((await rawRequest({ port: argos.ports.panel, path: p, method, headers: { Accept: 'text/html' } })).status, 404, `panel ${method} ${p}`);
    }
    assert.ok(!(await argos.viaCaddy(portal, '/login')).body.includes('/oidc/start'));
    assert.ok(!(await rawRequest({ port: argos.ports.panel, path: '/login' })).body.includes('/login/oidc/start'));
  });

  test('local admin login with password + TOTP still works, on the portal (two_factor host) and on the panel', async () => {
    const used = new Set<string>();
    const b = new CookieJarBrowser();
    const rd = `http://secure.example.test:${argos.ports.caddy}/`;
    const page = await b.request(`http://${argos.portalHost}:${argos.ports.caddy}/login?rd=${encodeURIComponent(rd)}`);
    const pw = await b.follow(`http://${argos.portalHost}:${argos.ports.caddy}/login`, {
      form: { _csrf: field(page.body, '_csrf')!, username: 'root', password: PASSWORD, rd },
    });
    const done = await b.follow(`http://${argos.portalHost}:${argos.ports.caddy}/login/2fa`, {
      form: { _csrf: field(pw.body, '_csrf')!, code: await freshCode(secret, used) },
    });
    assert.equal(done.status, 200);
    assert.equal(JSON.parse(done.body).headers['remote-user'], 'root');

    const panel = `http://127.0.0.1:${argos.ports.panel}`;
    const pb = new CookieJarBrowser();
    const lp = await pb.request(`${panel}/login`);
    const step = await pb.follow(`${panel}/login`, { form: { _csrf: field(lp.body, '_csrf')!, username: 'root', password: PASSWORD, next: '/' } });
    assert.equal(new URL(step.url).pathname, '/login/2fa');
    const inPanel = await pb.follow(`${panel}/login/2fa`, { form: { _csrf: field(step.body, '_csrf')!, code: await freshCode(secret, used) } });
    assert.equal(inPanel.status, 200);
    assert.ok(inPanel.body.includes('root'), 'signed in to the panel');
    assert.ok(pb.cookie(`${panel}/`, 'argos_panel'));
  });
});
