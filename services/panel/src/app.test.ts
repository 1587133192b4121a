/**
 * In-process HTTP stories for the operator panel: the real app on a random port, a fresh migrated
 * database in a temp directory, real argon2, and a fake Caddy integration that records its calls.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '@argos/shared/config';
import { openStore, type Store } from '@argos/shared/store';
import { CLI_ACTOR, listAudit } from '@argos/shared/audit';
import { addUser, resetAdminPassword } from '@argos/shared/commands/users';
import { createSession } from '@argos/shared/repos/sessions';
import type { User } from '@argos/shared/repos/users';
import { Browser, startPanel as startHarness, type Harness } from './testing.ts';

const MASTER = Buffer.alloc(32, 7);
const ADMIN = { username: 'alice', password: 'alice-password-1' };

let tmp: string;
let store: Store;
let config: Config;
let panel: Harness;

const startPanel = (cfg: Config = config) => startHarness(store, cfg);

async function signedIn(): Promise<Browser> {
  const b = new Browser(panel.url);
  const r = await b.login(ADMIN.username, ADMIN.password);
  assert.equal(r.status, 303, r.text);
  return b;
}

async function makeUser(username: string, extra: { isAdmin?: boolean } = {}): Promise<User> {
  return addUser(store.db, CLI_ACTOR, { username, password: `${username}-password-1`, ...extra });
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-panel-'));
  config = loadConfig({ ARGOS_MASTER_KEY: MASTER.toString('hex'), ARGOS_DATA_DIR: tmp, ARGOS_PORTAL_URL: 'https://auth.example.com' });
  store = await openStore({ dataDir: tmp, masterKey: MASTER }, 'migrator');
  await addUser(store.db, CLI_ACTOR, { ...ADMIN, isAdmin: true });
  panel = await startPanel();
});

after(async () => {
  await panel.close();
  await store.db.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('when an admin logs in with the right password, then the dashboard loads', async () => {
  const b = new Browser(panel.url);
  const r = await b.login(ADMIN.username, ADMIN.password);
  assert.equal(r.status, 303);
  assert.equal(r.headers.get('location'), '/');
  const cookie = r.setCookies.find((c) => c.startsWith('argos_panel='));
  assert.ok(cookie, 'session cookie set');
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.doesNotMatch(cookie, /Domain=/i);
  assert.doesNotMatch(cookie, /Secure/); // lan mode: plain HTTP

  const home = await b.get('/');
  assert.equal(home.status, 200);
  assert.match(home.text, /<h1>Dashboard<\/h1>/);
  assert.match(home.text, /LAN mode: the panel is served over plain HTTP/);
  assert.match(home.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  assert.doesNotMatch(home.text, /<script|style=/);
  const audit = await listAudit(store.db, { action: 'panel.login.success', target: ADMIN.username });
  assert.ok(audit.length >= 1);
  assert.equal(audit[0]!.actor, `admin:${ADMIN.username}`);
});

test('when the password is wrong, then a vague 401 comes back and no session cookie', async () => {
  const b = new Browser(panel.url);
  const r = await b.login(ADMIN.username, 'not-the-password');
  assert.equal(r.status, 401);
  assert.match(r.text, /Invalid username or password\./);
  assert.ok(!r.setCookies.some((c) => c.startsWith('argos_panel=')));
  assert.equal((await b.get('/')).status, 302);
});

test('when a non-admin user signs in, then the panel refuses with the same vague answer', async () => {
  await makeUser('bob');
  const b = new Browser(panel.url);
  const r = await b.login('bob', 'bob-password-1');
  assert.equal(r.status, 401);
  assert.match(r.text, /Invalid username or password\./);
  assert.ok(!r.setCookies.some((c) => c.startsWith('argos_panel=')));
  const [entry] = await listAudit(store.db, { action: 'panel.login.failure', target: 'bob' });
  assert.match(entry!.details, /not_admin/);
});

test('when one address fails six times, then it gets 429 with Retry-After', async () => {
  const own = await startPanel(); // its own regulator, so the other stories keep their address clean
  try {
    const b = new Browser(own.url);
    for (let i = 1; i <= 5; i++) assert.equal((await b.login(ADMIN.username, `wrong-${i}`)).status, 401, `attempt ${i}`);
    const r = await b.login(ADMIN.username, ADMIN.password);
    assert.equal(r.status, 429);
    assert.ok(Number(r.headers.get('retry-after')) > 0);
    assert.match(r.text, /Too many failed sign-ins/);
    assert.ok(!r.setCookies.some((c) => c.startsWith('argos_panel=')));
  } finally {
    await own.close();
  }
});

test('when a state-changing request has no CSRF token, then it is refused with 403 (form and API)', async () => {
  const b = await signedIn();
  const form = await b.req('POST', '/hosts', { form: { domain: 'csrf.example.com', upstreams: 'http://10.0.0.9:80', policy: 'one_factor', tlsMode: 'acme' } });
  assert.equal(form.status, 403);
  const wrong = await b.req('POST', '/hosts', { form: { _csrf: 'forged', domain: 'csrf.example.com', upstreams: 'http://10.0.0.9:80' } });
  assert.equal(wrong.status, 403);
  const api = await b.req('POST', '/api/v1/hosts', { json: { domain: 'csrf.example.com', upstreams: ['http://10.0.0.9:80'] } });
  assert.equal(api.status, 403);
  assert.match(api.json().error, /CSRF/);
  assert.equal((await b.api('GET', '/api/v1/hosts/csrf.example.com')).status, 404);
});

test('when a host form has an invalid upstream, then it is shown again with the error next to the field and status 400', async () => {
  const b = await signedIn();
  const r = await b.submit(
    '/hosts',
    { domain: 'media.example.com', upstreams: 'ftp://10.0.0.5', policy: 'one_factor', tlsMode: 'acme', enabled: '1' },
    '/hosts/new',
  );
  assert.equal(r.status, 400);
  assert.match(r.text, /<p class="field-error" id="upstreams-error" role="alert">[^<]*must start with http:\/\/ or https:\/\//);
  assert.match(r.text, /value="media.example.com"/);
  assert.match(r.text, />ftp:\/\/10.0.0.5<\/textarea>/);
});

test('when a host is created via the form and via the API, then each is audited and pushed to Caddy', async () => {
  const b = await signedIn();
  panel.applied.length = 0;

  panel.nextApply = { ok: false, error: 'loading config: bad upstream' };
  const r = await b.submit(
    '/hosts',
    { domain: 'Jellyfin.Example.com', upstreams: 'http://10.0.0.5:8096', policy: 'one_factor', tlsMode: 'acme', enabled: '1', allowedGroups: 'media' },
    '/hosts/new',
  );
  assert.equal(r.status, 303);
  assert.equal(r.headers.get('location'), '/hosts/jellyfin.example.com');
  const page = await b.get('/hosts/jellyfin.example.com');
  assert.equal(page.status, 200);
  assert.match(page.text, /Saved, but Caddy refused the new configuration: loading config: bad upstream\. The previous configuration keeps running\./);

  panel.nextApply = { ok: true };
  const api = await b.api('POST', '/api/v1/hosts', { domain: 'git.example.com', upstreams: ['http://10.0.0.6:3000'], policy: 'two_factor', enabled: true });
  assert.equal(api.status, 201, api.text);
  assert.equal(api.json().host.domain, 'git.example.com');
  assert.deepEqual(api.json().caddy, { ok: true });

  assert.deepEqual(
    panel.applied.map((a) => a.name),
    ['admin:alice', 'admin:alice'],
  );
  for (const domain of ['jellyfin.example.com', 'git.example.com']) {
    const entries = await listAudit(store.db, { action: 'host.create', target: domain });
    assert.equal(entries.length, 1, domain);
    assert.equal(entries[0]!.actor, 'admin:alice');
    assert.equal(entries[0]!.ip, '127.0.0.1');
    assert.equal(entries[0]!.user_agent, 'panel-test');
  }
  const list = await b.get('/hosts');
  assert.match(list.text, /jellyfin.example.com/);
  assert.match(list.text, /git.example.com/);

  const dup = await b.api('POST', '/api/v1/hosts', { domain: 'git.example.com', upstreams: 'http://10.0.0.7:80' });
  assert.equal(dup.status, 409);
  assert.ok(dup.json().fields.domain);
  const bad = await b.api('PUT', '/api/v1/hosts/git.example.com', { upstreams: 42 });
  assert.equal(bad.status, 400);
  assert.ok(bad.json().fields.upstreams);
});

test('when the JSON API is called without a session, then it answers 401 JSON, never a redirect; pages redirect to login', async () => {
  const b = new Browser(panel.url);
  for (const [method, p] of [
    ['GET', '/api/v1/hosts'],
    ['POST', '/api/v1/hosts'],
    ['GET', '/api/v1/users/alice'],
    ['DELETE', '/api/v1/hosts/x.example.com'],
  ] as const) {
    const r = await b.req(method, p, method === 'POST' ? { json: {} } : {});
    assert.equal(r.status, 401, `${method} ${p}`);
    assert.equal(r.headers.get('location'), null);
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(r.json().error, 'authentication required');
  }
  const page = await b.get('/hosts?x=1');
  assert.equal(page.status, 302);
  assert.equal(page.headers.get('location'), '/login?next=%2Fhosts%3Fx%3D1');
  const evil = await b.get('/login?next=//evil.example.com/');
  assert.match(evil.text, /name="next" value="\/"/);
});

test('when an admin must change their password, then every page leads to the password form until they do', async () => {
  await makeUser('carol', { isAdmin: true });
  const once = await resetAdminPassword(store.db, CLI_ACTOR, 'carol');
  const b = new Browser(panel.url);
  const r = await b.login('carol', once);
  assert.equal(r.status, 303);
  assert.equal(r.headers.get('location'), '/account/password');
  for (const p of ['/', '/hosts', '/users/alice']) {
    const page = await b.get(p);
    assert.equal(page.status, 302, p);
    assert.equal(page.headers.get('location'), '/account/password');
  }
  assert.equal((await b.get('/api/v1/hosts')).status, 403);

  const mismatch = await b.submit('/account/password', { current_password: once, password: 'carol-new-password', password_confirm: 'something-else' });
  assert.equal(mismatch.status, 400);
  assert.match(mismatch.text, /id="password_confirm-error"/);

  const oldCookie = b.jar.get('argos_panel');
  const done = await b.submit('/account/password', { current_password: once, password: 'carol-new-password', password_confirm: 'carol-new-password' });
  assert.equal(done.status, 303, done.text);
  assert.equal(done.headers.get('location'), '/welcome', 'after the one-time password, the first-run checklist');
  assert.notEqual(b.jar.get('argos_panel'), oldCookie, 'a fresh session cookie');
  const home = await b.get('/');
  assert.equal(home.status, 200);
  assert.match(home.text, /Password changed/);

  const stale = new Browser(panel.url);
  stale.jar.set('argos_panel', oldCookie!);
  assert.equal((await stale.get('/')).status, 302, 'the old session was revoked');
});

test("when an admin disables a user in the panel, then that user's sessions are revoked", async () => {
  const dave = await makeUser('dave');
  const { id } = await store.db.write((tx) =>
    createSession(tx, {
      kind: 'portal',
      userId: dave.id,
      factors: 1,
      authMethod: 'password',
      remember: false,
      lifetimeS: 3600,
      idleTimeoutS: 3600,
      ip: '10.0.0.2',
      userAgent: 'x',
    }),
  );
  const b = await signedIn();
  const r = await b.submit('/users/dave', { email: 'dave@example.com', displayName: 'Dave', groups: 'media', disabled: '1' }, '/users/dave');
  assert.equal(r.status, 303, r.text);
  const row = await store.db.get<{ revoked_at: number | null }>('SELECT revoked_at FROM sessions WHERE id = ?', [id]);
  assert.ok(row?.revoked_at, 'session revoked');
  const [entry] = await listAudit(store.db, { action: 'user.disable', target: 'dave' });
  assert.equal(entry?.actor, 'admin:alice');

  const self = await b.submit('/users/alice', { disabled: '1', isAdmin: '1' }, '/users/alice');
  assert.equal(self.status, 409);
  assert.match(self.text, /cannot disable your own account/);
});

test('when an admin walks through every page, then each renders without inline scripts or styles', async () => {
  const b = await signedIn();
  for (const p of [
    '/',
    '/hosts',
    '/hosts/new',
    '/hosts/git.example.com',
    '/users',
    '/users/new',
    '/users/bob',
    '/audit',
    '/audit?action=host.&page=1',
    '/settings',
    '/system',
    '/caddy/preview',
    '/account/password',
  ]) {
    const r = await b.get(p);
    assert.equal(r.status, 200, `${p}: ${r.text.slice(0, 300)}`);
    assert.doesNotMatch(r.text, /<script|\sstyle=|javascript:/i, p);
    assert.doesNotMatch(r.text, />\s*(undefined|null|NaN|\[object Object\])\s*</, p);
  }
  assert.equal((await b.get('/hosts/nope.example.com')).status, 404);
  const css = await b.get('/static/panel.css');
  assert.equal(css.status, 200);
  assert.match(css.headers.get('content-type') ?? '', /text\/css/);
});

test('when a setting is changed in the panel, then a bad value is explained next to the field and a good one is saved and audited', async () => {
  const b = await signedIn();
  const bad = await b.submit('/settings/panel.idle_timeout', { value: 'soon' }, '/settings');
  assert.equal(bad.status, 400);
  assert.match(bad.text, /id="value-error" role="alert">panel.idle_timeout: &quot;soon&quot; is not a duration/);
  const good = await b.submit('/settings/panel.idle_timeout', { value: '45m' }, '/settings');
  assert.equal(good.status, 303);
  const page = await b.get('/settings');
  assert.match(page.text, /Current: <strong>45m<\/strong>/);
  const [entry] = await listAudit(store.db, { action: 'settings.update', target: 'panel.idle_timeout' });
  assert.equal(entry?.actor, 'admin:alice');
  const api = await b.api('PUT', '/api/v1/settings/cookie.domains', { value: 'example.com, example.org' });
  assert.equal(api.status, 200, api.text);
  assert.deepEqual(api.json(), { key: 'cookie.domains', value: 'example.com,example.org' });
  assert.equal((await b.api('PUT', '/api/v1/settings/no.such', { value: '1' })).status, 404);
});

test('when a host is outside the cookie domains, then its page says sign-in goes through a handoff', async () => {
  const b = await signedIn();
  const api = await b.api('POST', '/api/v1/hosts', { domain: 'nas.home.arpa', upstreams: 'http://10.0.0.8:5000' });
  assert.equal(api.status, 201, api.text);
  const page = await b.get('/hosts/nas.home.arpa');
  assert.match(page.text, /nas.home.arpa is not under a visitor cookie domain/);
  const covered = await b.get('/hosts/git.example.com');
  assert.doesNotMatch(covered.text, /is not under a visitor cookie domain/);
});

test('when users are managed through the API, then responses never carry password hashes or TOTP seeds', async () => {
  const b = await signedIn();
  const created = await b.api('POST', '/api/v1/users', {
    username: 'Erin',
    password: 'erin-password-1',
    email: 'erin@example.com',
    groups: ['media', 'family'],
  });
  assert.equal(created.status, 201, created.text);
  assert.equal(created.json().user.username, 'erin');
  const short = await b.api('POST', '/api/v1/users', { username: 'frank', password: 'short' });
  assert.equal(short.status, 400);
  assert.ok(short.json().fields.password);
  const edited = await b.api('PUT', '/api/v1/users/erin', { displayName: 'Erin E.', disabled: true });
  assert.equal(edited.status, 200, edited.text);
  assert.equal(edited.json().user.disabled, true);
  const all = await b.api('GET', '/api/v1/users');
  for (const text of [created.text, edited.text, all.text]) assert.doesNotMatch(text, /argon2|passwordHash|totpSecret/);
  assert.equal((await b.api('PUT', '/api/v1/users/alice', { isAdmin: false })).status, 409);
  assert.equal((await b.api('DELETE', '/api/v1/users/erin')).status, 200);
  assert.equal((await b.api('GET', '/api/v1/users/erin')).status, 404);
  const audit = await b.api('GET', '/api/v1/audit?target=erin');
  assert.deepEqual(
    audit.json().entries.map((e: { action: string }) => e.action),
    ['user.delete', 'user.disable', 'user.create'],
  );
});

test('when the panel runs behind Caddy, then cookies are Secure, HSTS is sent and the audit has the forwarded client address', async () => {
  const cfg = loadConfig({
    ARGOS_MASTER_KEY: MASTER.toString('hex'),
    ARGOS_DATA_DIR: tmp,
    ARGOS_PORTAL_URL: 'https://auth.example.com',
    ARGOS_MODE: 'behind_caddy',
    ARGOS_PANEL_DOMAIN: '127.0.0.1', // the test browser addresses the panel by IP; the Host check is covered below
  });
  const own = await startPanel(cfg);
  try {
    const b = new Browser(own.url);
    const page = await b.get('/login');
    assert.match(page.headers.get('strict-transport-security') ?? '', /max-age=/);
    assert.doesNotMatch(page.text, /LAN mode/);
    const _csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const r = await b.req('POST', '/login', {
      form: { username: ADMIN.username, password: ADMIN.password, _csrf },
      headers: { 'x-forwarded-for': '203.0.113.7' },
    });
    assert.equal(r.status, 303);
    const cookie = r.setCookies.find((c) => c.startsWith('argos_panel='))!;
    assert.match(cookie, /; Secure/);
    assert.doesNotMatch(cookie, /Domain=/i);
    const [entry] = await listAudit(store.db, { action: 'panel.login.success' });
    assert.equal(entry!.ip, '203.0.113.7');
  } finally {
    await own.close();
  }
});

test('behind Caddy, a request for another host name (DNS rebinding) is refused and cookies are Secure with HSTS', async () => {
  const cfg = loadConfig({ ARGOS_MASTER_KEY: MASTER.toString('hex'), ARGOS_DATA_DIR: tmp, ARGOS_PORTAL_URL: 'https://auth.example.com', ARGOS_MODE: 'behind_caddy', ARGOS_PANEL_DOMAIN: 'panel.example.com' });
  const h = await startPanel(cfg);
  // fetch() will not send a custom Host header: use node:http.
  const get = (host: string) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
      const u = new URL(h.url + '/login');
      http.get({ hostname: u.hostname, port: u.port, path: u.pathname, headers: { host } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, headers: res.headers });
      }).on('error', reject);
    });
  try {
    assert.equal((await get('rebind.attacker.example')).status, 421);
    const ok = await get('panel.example.com');
    assert.equal(ok.status, 200);
    assert.match(String(ok.headers['strict-transport-security']), /max-age/);
    assert.match(String(ok.headers['set-cookie']), /Secure/);
  } finally {
    await h.close();
  }
});
