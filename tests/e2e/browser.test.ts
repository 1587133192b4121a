/**
 * The operator's and the visitor's stories in a real browser (Debian Chromium), through the real panel,
 * gatekeeper and Caddy: first run, TOTP login to a protected host, revocation, Test access, form errors,
 * CSRF, and panel login regulation. Screenshots of the main pages land in test-artifacts/screenshots/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as OTPAuth from 'otpauth';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createArgos, startEcho, waitFor, type Argos } from '../lib/argos.ts';
import { launchChromium, screenshot, shot } from '../lib/chromium.ts';

const totp = (secret: string) => new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30, algorithm: 'SHA1' }).generate();

/** Waits for the next TOTP step so a freshly used code is never replayed by the next login. */
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

describe('in a real browser', () => {
  let argos: Argos;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let browser: Browser;
  let operator: BrowserContext;
  let op: Page;
  let panel: string;
  let app: string;
  const usedCodes = new Set<string>();

  before(async () => {
    echo = await startEcho();
    // No initial password in the environment: the panel prints a one-time password, like a first `npm start`.
    argos = await createArgos({ ARGOS_INITIAL_ADMIN_PASSWORD: '' });
    await argos.start();
    panel = `http://127.0.0.1:${argos.ports.panel}`;
    app = `http://app.example.test:${argos.ports.caddy}`;
    browser = await launchChromium();
    operator = await browser.newContext();
    op = await operator.newPage();
  });

  after(async () => {
    await browser?.close();
    await argos?.stop();
    await echo?.close();
  });

  test('first run: one-time password → new password → TOTP enrollment → first host published', async () => {
    const once = /one-time password:\s+(\S+)/.exec(argos.logs())?.[1];
    assert.ok(once, 'the panel printed a one-time password');
    await op.goto(`${panel}/login`);
    await screenshot(op, { path: shot('panel-login') });
    await op.fill('input[name=username]', 'admin');
    await op.fill('input[name=password]', once!);
    await Promise.all([op.waitForURL(`${panel}/account/password`), op.click('button[type=submit]')]);
    await op.fill('input[name=current_password]', once!);
    await op.fill('input[name=password]', 'operator-passphrase-2026');
    await op.fill('input[name=password_confirm]', 'operator-passphrase-2026');
    await Promise.all([op.waitForURL(`${panel}/welcome`), op.click('form[action="/account/password"] button[type=submit]')]);
    await screenshot(op, { path: shot('panel-welcome') });

    await Promise.all([op.waitForURL(`${panel}/account/totp`), op.click('a[href="/account/totp"] >> nth=-1')]);
    const secret = (await op.textContent('code.secret'))!.trim();
    await op.fill('input[name=code]', await freshCode(secret, usedCodes));
    await op.click('form[action="/account/totp"] button[type=submit]');
    await op.waitForSelector('text=Save your recovery codes');
    assert.equal(await op.locator('ul.codes li').count(), 10);

    await op.goto(`${panel}/hosts/new`);
    await op.fill('input[name=domain]', 'app.example.test');
    await op.fill('textarea[name=upstreams]', `http://127.0.0.1:${echo.port}`);
    await op.selectOption('select[name=policy]', 'two_factor');
    await op.selectOption('select[name=tlsMode]', 'off');
    await screenshot(op, { path: shot('panel-host-editor'), fullPage: true });
    await Promise.all([op.waitForURL(`${panel}/hosts/app.example.test`), op.click('form[action="/hosts"] button[type=submit]:not([name])')]);
    assert.match((await op.textContent('body'))!, /Host app\.example\.test published/);
    await op.goto(`${panel}/`);
    await screenshot(op, { path: shot('panel-dashboard'), fullPage: true });
  });

  test('a form with an invalid upstream shows the error next to the field', async () => {
    await op.goto(`${panel}/hosts/new`);
    await op.fill('input[name=domain]', 'broken.example.test');
    await op.fill('textarea[name=upstreams]', 'ftp://nas.local');
    await op.click('form[action="/hosts"] button[type=submit]:not([name])');
    const field = op.locator('.field.invalid', { has: op.locator('textarea[name=upstreams]') });
    await field.waitFor();
    assert.match((await field.textContent())!, /must start with http:\/\/ or https:\/\//);
  });

  test('a visitor opens the host, signs in with password and TOTP at the portal, and lands on the page they asked for', async () => {
    assert.equal(argos.cli(['user', 'add', 'vera', '--password-stdin', '--email', 'vera@example.test'], 'vera-passphrase-1').code, 0);
    const provisioned = JSON.parse(argos.cli(['user', 'totp', 'enroll', 'vera', '--json']).stdout);
    const visitor = await browser.newContext();
    const v = await visitor.newPage();
    await v.goto(`${app}/shows/42?tab=cast`);
    assert.match(v.url(), new RegExp(`^http://auth\\.example\\.test:${argos.ports.caddy}/login\\?rd=`));
    await screenshot(v, { path: shot('portal-login') });
    await v.fill('input[name=username]', 'vera');
    await v.fill('input[name=password]', 'vera-passphrase-1');
    await Promise.all([v.waitForURL(/\/login\/2fa$/), v.click('button[type=submit]')]);
    await v.fill('input[name=code]', await freshCode(provisioned.secret, usedCodes));
    await Promise.all([v.waitForURL(`${app}/shows/42?tab=cast`), v.click('button[type=submit]')]);
    const seen = JSON.parse((await v.textContent('body'))!);
    assert.equal(seen.headers['remote-user'], 'vera');
    assert.equal(seen.url, '/shows/42?tab=cast');

    // The operator revokes that session; the visitor's next navigation goes to the login page.
    await op.goto(`${panel}/users/vera/security`);
    await screenshot(op, { path: shot('panel-user-security'), fullPage: true });
    await Promise.all([op.waitForURL(/\/users\/vera\/security$/), op.click('form[action$="/sessions/revoke-all"] button')]);
    await waitFor('visitor sent back to the portal', async () => {
      await v.goto(`${app}/shows/42`);
      return v.url().startsWith(`http://auth.example.test:${argos.ports.caddy}/login`);
    }, 3000);
    await visitor.close();
  });

  test('the operator uses Test access to explain a geo denial', async () => {
    assert.equal(argos.cli(['host', 'edit', 'app.example.test', '--geo-allow', 'DE']).code, 0);
    await op.goto(`${panel}/access?host=app.example.test&uri=%2F&ip=8.8.8.8&user=vera`);
    await screenshot(op, { path: shot('panel-test-access'), fullPage: true });
    const text = (await op.textContent('main'))!;
    assert.match(text, /DENY/);
    assert.match(text, /geo_not_allowed/);
    assert.match(text, /US/);
  });

  test('a POST without the CSRF token is refused', async () => {
    const r = await op.request.post(`${panel}/hosts`, { form: { domain: 'csrf.example.test', upstreams: 'http://127.0.0.1:9' }, maxRedirects: 0 });
    assert.equal(r.status(), 403);
    assert.equal(argos.cli(['host', 'show', 'csrf.example.test']).code, 1, 'nothing was created');
  });

  test('repeated wrong panel passwords end in 429 with Retry-After', async () => {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    let last = 0;
    let retryAfter: string | undefined;
    for (let i = 0; i < 6; i++) {
      await p.goto(`${panel}/login`);
      await p.fill('input[name=username]', 'admin');
      await p.fill('input[name=password]', `wrong-${i}-password`);
      const [resp] = await Promise.all([p.waitForResponse((res) => res.url() === `${panel}/login` && res.request().method() === 'POST'), p.click('button[type=submit]')]);
      last = resp.status();
      retryAfter = resp.headers()['retry-after'];
    }
    assert.equal(last, 429);
    assert.ok(Number(retryAfter) > 0, `Retry-After: ${retryAfter}`);
    await screenshot(p, { path: shot('panel-login-429') });
    await ctx.close();
  });
});
