/**
 * In-process stories for panel single sign-on: the settings page (write-only secret, validation, redirect URIs,
 * recent re-authentication), SSO routes answering 404 while SSO is off, and panel sessions created through SSO
 * stopping when SSO is turned off (setting or ARGOS_OIDC_ENABLED=false). The full flow against a real provider
 * is in tests/e2e/oidc.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '@argos/shared/config';
import { openStore, type Store } from '@argos/shared/store';
import { CLI_ACTOR, listAudit } from '@argos/shared/audit';
import { addUser } from '@argos/shared/commands/users';
import { changeSetting } from '@argos/shared/commands/settings';
import { createSession } from '@argos/shared/repos/sessions';
import { readSecret } from '@argos/shared/secrets';
import { Vault } from '@argos/shared/crypto';
import { keyVersion } from '@argos/shared/store';
import { Browser, startPanel, type Harness } from './testing.ts';

const MASTER = Buffer.alloc(32, 9);
const ADMIN = { username: 'olga', password: 'olga-password-123' };

let tmp: string;
let store: Store;
let config: Config;
let panel: Harness;
let adminId: number;

async function signedIn(): Promise<Browser> {
  const b = new Browser(panel.url);
  assert.equal((await b.login(ADMIN.username, ADMIN.password)).status, 303);
  return b;
}

/** A panel session created "through SSO" for the admin, as a cookie in a fresh browser. */
async function ssoSession(p: Harness, reauthAgoMs = 0): Promise<Browser> {
  const { token, id } = await store.db.write((tx) =>
    createSession(tx, {
      kind: 'panel',
      userId: adminId,
      factors: 1,
      authMethod: 'oidc',
      remember: false,
      lifetimeS: 3600,
      idleTimeoutS: 3600,
      ip: '127.0.0.1',
      userAgent: 'x',
    }),
  );
  if (reauthAgoMs) await store.db.write((tx) => tx.run('UPDATE sessions SET reauth_at = ? WHERE id = ?', [Date.now() - reauthAgoMs, id]));
  const b = new Browser(p.url);
  b.jar.set('argos_panel', token);
  return b;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-panel-sso-'));
  config = loadConfig({ ARGOS_MASTER_KEY: MASTER.toString('hex'), ARGOS_DATA_DIR: tmp, ARGOS_PORTAL_URL: 'https://auth.example.com' });
  store = await openStore({ dataDir: tmp, masterKey: MASTER }, 'migrator');
  adminId = (await addUser(store.db, CLI_ACTOR, { ...ADMIN, isAdmin: true })).id;
  panel = await startPanel(store, config);
});

after(async () => {
  await panel.close();
  await store.db.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('while SSO is off, the panel SSO routes answer 404 and the sign-in page has no SSO button', async () => {
  const b = new Browser(panel.url);
  assert.equal((await b.req('POST', '/login/oidc/start', { form: { _csrf: await b.csrf('/login') } })).status, 404);
  assert.equal((await b.get('/login/oidc/callback?state=a&code=b')).status, 404);
  assert.equal((await b.req('POST', '/login/oidc/2fa', { form: {} })).status, 404);
  assert.doesNotMatch((await b.get('/login')).text, /\/login\/oidc\/start/);
});

test('the settings page saves the provider, keeps the secret write-only, validates, and shows the redirect URIs', async () => {
  const b = await signedIn();
  const page = await b.get('/settings/oidc');
  assert.equal(page.status, 200);
  assert.match(page.text, /https:\/\/auth\.example\.com\/oidc\/callback/);
  assert.match(page.text, new RegExp(`${panel.url.replace(/[/.:]/g, '\\$&')}/login/oidc/callback`));
  assert.match(page.text, /<script src="\/static\/oidc-settings\.js"><\/script>/);
  assert.doesNotMatch(page.text, /<script>/, 'no inline script');

  const bad = await b.submit('/settings/oidc', { issuer: 'http://idp.example.com', client_id: 'argos', scopes: 'openid', enabled: '1' }, '/settings/oidc');
  assert.equal(bad.status, 400);
  assert.match(bad.text, /must be https/);
  const missing = await b.submit('/settings/oidc', { issuer: '', client_id: '', enabled: '1' }, '/settings/oidc');
  assert.equal(missing.status, 400);
  assert.match(missing.text, /Set the issuer URL and client ID/);

  const form = {
    issuer: 'https://idp.example.com',
    client_id: 'argos',
    scopes: 'openid email profile',
    button_label: 'Sign in with Example',
    allowed_domains: 'Example.com',
    allowed_emails: '',
    groups_claim: 'groups',
    require_email_verified: '1',
    enabled: '1',
  };
  const saved = await b.submit('/settings/oidc', { ...form, client_secret: 'top-secret-value-1' }, '/settings/oidc');
  assert.equal(saved.status, 303, saved.text.slice(0, 300));
  const vault = new Vault(MASTER, await keyVersion(store.db));
  assert.equal(await readSecret(store.db, vault, 'oidc.client_secret'), 'top-secret-value-1');
  const again = await b.get('/settings/oidc?done=saved');
  assert.match(again.text, /settings saved/);
  assert.doesNotMatch(again.text, /top-secret-value-1/, 'the secret is never shown again');
  assert.match(again.text, /leave blank to keep/);
  assert.match(again.text, /value="example\.com"/, 'domains are normalised');

  // Blank keeps the secret.
  assert.equal((await b.submit('/settings/oidc', { ...form, client_secret: '' }, '/settings/oidc')).status, 303);
  assert.equal(await readSecret(store.db, vault, 'oidc.client_secret'), 'top-secret-value-1');
  const audit = await listAudit(store.db, { action: 'secret.set', target: 'oidc.client_secret' });
  assert.equal(audit.length, 1, 'one secret change audited');
  assert.doesNotMatch(JSON.stringify(audit), /top-secret-value-1/);
  assert.ok((await listAudit(store.db, { action: 'settings.update', target: 'oidc.issuer' })).length >= 1);

  // Now on: the sign-in page offers the button with the chosen label.
  assert.match((await new Browser(panel.url).get('/login')).text, /Sign in with Example/);
});

test('the SSO settings page needs a recent password confirmation, like secrets', async () => {
  const b = await ssoSession(panel, 60 * 60_000);
  const r = await b.get('/settings/oidc');
  assert.equal(r.status, 303);
  assert.equal(r.headers.get('location'), '/reauth?next=%2Fsettings%2Foidc');
  const post = await b.req('POST', '/settings/oidc/link', { form: { _csrf: await b.csrf('/hosts') } });
  assert.equal(post.status, 303);
  assert.match(post.headers.get('location') ?? '', /^\/reauth/);
});

test('a panel session created through SSO stops when SSO is turned off (setting), and password sessions do not', async () => {
  await changeSetting(store.db, CLI_ACTOR, 'oidc.enabled', 'true');
  const sso = await ssoSession(panel);
  const pw = await signedIn();
  assert.equal((await sso.get('/hosts')).status, 200);
  await changeSetting(store.db, CLI_ACTOR, 'oidc.enabled', 'false');
  assert.equal((await sso.get('/hosts')).status, 302);
  assert.equal((await pw.get('/hosts')).status, 200);
  await changeSetting(store.db, CLI_ACTOR, 'oidc.enabled', 'true');
});

test('ARGOS_OIDC_ENABLED=false: SSO sessions stop and SSO routes 404 even though the setting is on', async () => {
  const off = await startPanel(store, { ...config, oidcEnabledOverride: false });
  try {
    const sso = await ssoSession(off);
    assert.equal((await sso.get('/hosts')).status, 302);
    const b = new Browser(off.url);
    assert.equal((await b.get('/login/oidc/callback?state=a&code=b')).status, 404);
    assert.doesNotMatch((await b.get('/login')).text, /\/login\/oidc\/start/);
    assert.equal((await (await ssoSession(panel)).get('/hosts')).status, 200, 'the same kind of session passes where SSO is on');
  } finally {
    await off.close();
  }
});
