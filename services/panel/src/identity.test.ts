/**
 * Panel identity stories, in-process: admin API tokens for the JSON API, the operator's own TOTP at sign-in,
 * the "require 2FA for the panel" gate, per-user session revocation, and the Test access / decisions pages.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as OTPAuth from 'otpauth';
import { loadConfig, type Config } from '@argos/shared/config';
import { openStore, type Store } from '@argos/shared/store';
import { CLI_ACTOR, listAudit } from '@argos/shared/audit';
import { addUser } from '@argos/shared/commands/users';
import { addHost } from '@argos/shared/commands/hosts';
import { changeSetting } from '@argos/shared/commands/settings';
import { issueApiToken, provisionTotp } from '@argos/shared/commands/identity';
import { createSession, listUserSessions } from '@argos/shared/repos/sessions';
import { getUser } from '@argos/shared/repos/users';
import { Browser, startPanel, type Harness } from './testing.ts';

const MASTER = Buffer.alloc(32, 3);
let tmp: string;
let store: Store;
let config: Config;
let panel: Harness;

/** Each story gets its own panel (and so its own login regulator): failures in one must not ban the next. */
async function freshPanel(): Promise<Harness> {
  await panel?.close();
  panel = await startPanel(store, config);
  return panel;
}

const code = (secret: string, offsetSteps = 0) =>
  new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30, algorithm: 'SHA1' }).generate({ timestamp: Date.now() + offsetSteps * 30_000 });

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-panel-id-'));
  config = loadConfig({ ARGOS_MASTER_KEY: MASTER.toString('hex'), ARGOS_DATA_DIR: tmp, ARGOS_PORTAL_URL: 'https://auth.example.com' });
  store = await openStore({ dataDir: tmp, masterKey: MASTER }, 'migrator');
  await addUser(store.db, CLI_ACTOR, { username: 'root', password: 'root-password-1', isAdmin: true });
  await addUser(store.db, CLI_ACTOR, { username: 'bob', password: 'bob-password-12' });
  await addHost(store.db, CLI_ACTOR, { domain: 'app.example.com', upstreams: 'http://10.0.0.5:8096', policy: 'one_factor' });
});

after(async () => {
  await panel?.close();
  await store.db.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('when a script sends an admin API token, then the JSON API answers without a cookie or CSRF token; a wrong or non-admin token gets 401', async () => {
  await freshPanel();
  const admin = await issueApiToken(store.db, CLI_ACTOR, 'root', { name: 'ci', adminScope: true });
  const visitorToken = await issueApiToken(store.db, CLI_ACTOR, 'bob', { name: 'phone' });
  const b = new Browser(panel.url);
  const ok = await b.req('POST', '/api/v1/hosts', { json: { domain: 'api.example.com', upstreams: ['http://10.0.0.9:80'] }, headers: { authorization: `Bearer ${admin.token}` } });
  assert.equal(ok.status, 201, ok.text);
  const entries = await listAudit(store.db, { action: 'host.create', target: 'api.example.com' });
  assert.equal(entries[0]?.actor, 'admin:root');
  for (const bad of ['argos_' + 'x'.repeat(43), visitorToken.token, 'not-a-token']) {
    const r = await b.req('GET', '/api/v1/hosts', { headers: { authorization: `Bearer ${bad}` } });
    assert.equal(r.status, 401, bad);
  }
  const page = await b.req('GET', '/hosts', { headers: { authorization: `Bearer ${admin.token}` } });
  assert.notEqual(page.status, 200, 'tokens open the JSON API only, not the cookie-based pages');
});

test('when an admin with TOTP signs in, then the password alone gives no session; the right code does, and a replayed code does not', async () => {
  await freshPanel();
  await addUser(store.db, CLI_ACTOR, { username: 'carol', password: 'carol-password-1', isAdmin: true });
  const { secret } = await provisionTotp(store.db, store.vault, CLI_ACTOR, 'carol');
  const b = new Browser(panel.url);
  const r = await b.login('carol', 'carol-password-1');
  assert.equal(r.status, 303);
  assert.equal(r.headers.get('location'), '/login/2fa');
  assert.ok(!b.jar.has('argos_panel'), 'no panel session after the password alone');
  assert.equal((await b.get('/')).status, 302, 'the dashboard is not reachable with a pending challenge');

  const wrong = await b.submit('/login/2fa', { code: '000000' });
  assert.equal(wrong.status, 401);
  const c = code(secret);
  const right = await b.submit('/login/2fa', { code: c });
  assert.equal(right.status, 303, right.text);
  assert.ok(b.jar.has('argos_panel'));
  assert.equal((await b.get('/')).status, 200);
  const s = (await listUserSessions(store.db, (await getUser(store.db, 'carol'))!.id)).find((x) => x.kind === 'panel');
  assert.equal(s?.factors, 2);

  const again = new Browser(panel.url);
  await again.login('carol', 'carol-password-1');
  const replay = await again.submit('/login/2fa', { code: c });
  assert.equal(replay.status, 401, 'the same code cannot be used twice');
});

test('when the panel requires 2FA, then an admin without TOTP reaches only enrollment, and enrolling with a valid code opens the panel', async () => {
  await freshPanel();
  await addUser(store.db, CLI_ACTOR, { username: 'dave', password: 'dave-password-1', isAdmin: true });
  await changeSetting(store.db, CLI_ACTOR, 'panel.require_2fa', 'true');
  try {
    const b = new Browser(panel.url);
    await b.login('dave', 'dave-password-1');
    const home = await b.get('/');
    assert.equal(home.status, 302);
    assert.equal(home.headers.get('location'), '/account/totp');
    const api = await b.get('/api/v1/hosts');
    assert.equal(api.status, 403);
    const page = await b.get('/account/totp');
    const secret = /<code class="secret">([A-Z2-7]+)<\/code>/.exec(page.text)?.[1];
    assert.ok(secret, 'the enrollment page shows the key');
    const done = await b.submit('/account/totp', { code: code(secret!) }, '/account/totp');
    assert.equal(done.status, 200);
    assert.match(done.text, /recovery codes/i);
    assert.equal((await b.get('/')).status, 200);
  } finally {
    await changeSetting(store.db, CLI_ACTOR, 'panel.require_2fa', 'false');
  }
});

test("when the operator revokes a visitor's session on the user's security page, then it is revoked (and audited)", async () => {
  await freshPanel();
  const bob = (await getUser(store.db, 'bob'))!;
  const s = await store.db.write((tx) =>
    createSession(tx, { kind: 'portal', userId: bob.id, factors: 1, authMethod: 'password', remember: false, lifetimeS: 3600, idleTimeoutS: 3600, ip: '203.0.113.5', userAgent: 'phone' }),
  );
  const b = new Browser(panel.url);
  await b.login('root', 'root-password-1');
  const page = await b.get('/users/bob/security');
  assert.equal(page.status, 200);
  assert.match(page.text, /203\.0\.113\.5/);
  const r = await b.submit(`/users/bob/sessions/${s.id}/revoke`, {}, '/users/bob/security');
  assert.equal(r.status, 303);
  const row = await store.db.get<{ revoked_at: number | null }>('SELECT revoked_at FROM sessions WHERE id = ?', [s.id]);
  assert.ok(row?.revoked_at);
  assert.equal((await listAudit(store.db, { action: 'user.session.revoke', target: 'bob' })).length, 1);
});

test('Test access explains a decision in plain words, and the decisions page lists the log with filters', async () => {
  await freshPanel();
  await store.db.write((tx) =>
    tx.run(
      'INSERT INTO decision_log (ts, request_id, host, method, path, ip, country, user, verdict, reason, status, latency_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [Date.now(), 'r1', 'app.example.com', 'GET', '/admin', '198.51.100.77', 'DE', null, 'deny', 'geo_not_allowed', 403, 420],
    ),
  );
  const b = new Browser(panel.url);
  await b.login('root', 'root-password-1');
  const out = await b.get('/access?host=app.example.com&uri=%2Fadmin&ip=203.0.113.9&method=GET&accept=text%2Fhtml');
  assert.equal(out.status, 200);
  assert.match(out.text, /LOGIN/);
  assert.match(out.text, /not_authenticated/);
  assert.match(out.text, /host_policy/);
  const asBob = await b.get('/access?host=app.example.com&uri=%2F&ip=203.0.113.9&user=bob');
  assert.match(asBob.text, /ALLOW/);
  const list = await b.get('/decisions?reason=geo_not_allowed');
  assert.match(list.text, /198\.51\.100\.77/);
  const none = await b.get('/decisions?reason=rate_limited');
  assert.doesNotMatch(none.text, /198\.51\.100\.77/);
});

test('when the last sign-in is older than five minutes, then removing a user\'s second factor first asks the operator to re-authenticate', async () => {
  let clock = Date.now();
  await panel?.close();
  panel = await startPanel(store, config, () => clock);
  await addUser(store.db, CLI_ACTOR, { username: 'erin', password: 'erin-password-1' });
  await provisionTotp(store.db, store.vault, CLI_ACTOR, 'erin');
  const b = new Browser(panel.url);
  await b.login('root', 'root-password-1');
  clock += 6 * 60_000;
  const page = '/users/erin/security';
  const r = await b.submit('/users/erin/totp/reset', {}, page);
  assert.equal(r.status, 303);
  assert.match(r.headers.get('location') ?? '', /^\/reauth\?next=/);
  assert.ok((await getUser(store.db, 'erin'))!.totpEnabledAt, 'nothing changed yet');
  for (const spelling of ['/users/erin/TOTP/reset', '/USERS/erin/totp/reset/']) {
    const other = await b.submit(spelling, {}, page);
    assert.match(other.headers.get('location') ?? '', /^\/reauth\?next=/, `${spelling} must not skip re-authentication`);
  }
  const token = await b.submit('/users/root/tokens', { name: 'x', admin_scope: '1', expires_days: '30' }, '/users/root/security');
  assert.match(token.headers.get('location') ?? '', /^\/reauth\?next=/, 'minting an admin token needs re-authentication');
  assert.ok((await getUser(store.db, 'erin'))!.totpEnabledAt, 'still nothing changed');
  const wrong = await b.submit('/reauth', { password: 'not-my-password', next: page }, '/reauth');
  assert.equal(wrong.status, 401);
  const ok = await b.submit('/reauth', { password: 'root-password-1', next: page }, '/reauth');
  assert.equal(ok.status, 303);
  assert.equal((await b.submit('/users/erin/totp/reset', {}, page)).status, 303);
  assert.equal((await getUser(store.db, 'erin'))!.totpEnabledAt, null);
});
