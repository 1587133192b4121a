/**
 * Every mutating panel route and JSON API endpoint writes an audit entry.
 *
 * The routes are enumerated from the running app's router stacks (every POST/PUT/DELETE/PATCH layer), so a new
 * route without an entry in ROUTES below fails this test ("route X has no audit test entry"). Each entry says how
 * to exercise the route and which audit action it must record; a POST that changes nothing (a probe, the first
 * step of a redirect flow) is listed as `readOnly` with the reason, and the test proves it changed no table.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig, type Config } from '@argos/shared/config';
import { openStore, type Store } from '@argos/shared/store';
import { Regulator } from '@argos/shared/regulation';
import { silentLogger } from '@argos/shared/log';
import { CLI_ACTOR, type AuditRow } from '@argos/shared/audit';
import { addUser } from '@argos/shared/commands/users';
import { addHost } from '@argos/shared/commands/hosts';
import { changeSetting } from '@argos/shared/commands/settings';
import { provisionTotp } from '@argos/shared/commands/identity';
import { createBackup } from '@argos/shared/backup';
import { createSession } from '@argos/shared/repos/sessions';
import { totpFor } from '@argos/shared/totp';
import { CaddySync } from '@argos/shared/caddy/sync';
import { createPanel } from './app.ts';

const MASTER = Buffer.alloc(32, 42);
const PW = 'operator-password-1';

interface Res {
  status: number;
  text: string;
  location: string | null;
}

/** A minimal browser: cookie jar, forms with the page's CSRF token, JSON with the session's token. */
class Browser {
  readonly jar = new Map<string, string>();
  constructor(readonly base: string) {}

  async req(
    method: string,
    p: string,
    o: { form?: Record<string, string>; json?: unknown; raw?: { type: string; body: Buffer }; headers?: Record<string, string> } = {},
  ): Promise<Res> {
    const headers: Record<string, string> = { 'user-agent': 'audit-coverage', ...o.headers };
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | Uint8Array<ArrayBuffer> | undefined;
    if (o.form) {
      body = new URLSearchParams(o.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else if (o.json !== undefined) {
      body = JSON.stringify(o.json);
      headers['content-type'] = 'application/json';
    } else if (o.raw) {
      body = new Uint8Array(o.raw.body.length);
      body.set(o.raw.body);
      headers['content-type'] = o.raw.type;
    }
    const res = await fetch(this.base + p, { method, headers, body, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const pair = c.split(';')[0]!;
      const eq = pair.indexOf('=');
      if (/;\s*max-age=0/i.test(c)) this.jar.delete(pair.slice(0, eq));
      else this.jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return { status: res.status, text: await res.text(), location: res.headers.get('location') };
  }

  async csrf(p: string): Promise<string> {
    const page = await this.req('GET', p);
    const m = /name="_csrf" value="([^"]+)"/.exec(page.text);
    assert.ok(m, `no CSRF field on ${p} (status ${page.status})`);
    return m[1]!;
  }

  async submit(p: string, form: Record<string, string>, from: string): Promise<Res> {
    return this.req('POST', p, { form: { _csrf: await this.csrf(from), ...form } });
  }

  async api(method: string, p: string, json?: unknown): Promise<Res> {
    const s = await this.req('GET', '/api/v1/session');
    const token = (JSON.parse(s.text) as { csrfToken: string }).csrfToken;
    return this.req(method, p, { json: json ?? {}, headers: { 'x-csrf-token': token } });
  }

  async login(username: string, password = PW): Promise<Res> {
    return this.req('POST', '/login', { form: { _csrf: await this.csrf('/login'), username, password, next: '/' } });
  }

  /** Signs in and re-authenticates (sensitive routes need a recent confirmation). */
  async signedIn(username: string): Promise<this> {
    const r = await this.login(username);
    assert.equal(r.status, 303, `login of ${username}: ${r.status} ${r.text.slice(0, 200)}`);
    const re = await this.submit('/reauth', { password: PW, next: '/' }, '/reauth?next=%2F');
    assert.equal(re.status, 303, `reauth: ${re.status}`);
    return this;
  }
}

interface H {
  op: Browser;
  url: string;
  store: Store;
  config: Config;
  fresh(): Browser;
  user(name: string, admin?: boolean): Promise<number>;
  latestBackup(): Promise<string>;
}

type Entry =
  | { setup?: (h: H) => Promise<void>; run: (h: H) => Promise<Res>; expect: RegExp }
  | { setup?: (h: H) => Promise<void>; run: (h: H) => Promise<Res>; readOnly: string };

let n = 0;
const uniq = (p: string) => `${p}${++n}`;

const ROUTES: Record<string, Entry> = {
  // Sign-in, sign-out and the operator's own account.
  'POST /login': { run: (h) => h.fresh().login('nobody-here', 'wrong-password-1'), expect: /^panel\.login\.failure$/ },
  'POST /login/2fa': {
    run: async (h) => {
      const name = uniq('tina');
      await h.user(name, true);
      const { secret } = await provisionTotp(h.store.db, h.store.vault, CLI_ACTOR, name);
      const b = h.fresh();
      await b.login(name);
      const good = totpFor(secret).generate();
      return b.submit('/login/2fa', { code: String((Number(good) + 500_000) % 1_000_000).padStart(6, '0') }, '/login/2fa');
    },
    expect: /^panel\.login\.2fa_failure$/,
  },
  'POST /logout': { run: async (h) => (await h.fresh().signedIn('alice')).submit('/logout', {}, '/'), expect: /^panel\.logout$/ },
  'POST /reauth': { run: (h) => h.op.submit('/reauth', { password: PW, next: '/' }, '/reauth?next=%2F'), expect: /^panel\.reauth$/ },
  'POST /account/totp': {
    run: async (h) => {
      const name = uniq('enroller');
      await h.user(name, true);
      const b = await h.fresh().signedIn(name);
      const page = await b.req('GET', '/account/totp');
      const secret = /class="secret">([A-Z2-7]+)</.exec(page.text)?.[1];
      assert.ok(secret, 'the enrollment page shows the key');
      return b.submit('/account/totp', { code: totpFor(secret).generate() }, '/account/totp');
    },
    expect: /^user\.2fa\.enroll$/,
  },
  'POST /account/password': {
    run: async (h) => {
      const name = uniq('changer');
      await h.user(name, true);
      const b = await h.fresh().signedIn(name);
      return b.submit(
        '/account/password',
        { current_password: PW, password: 'a-brand-new-password-2', password_confirm: 'a-brand-new-password-2' },
        '/account/password',
      );
    },
    expect: /^user\.password\.set$/,
  },

  // Hosts.
  'POST /hosts': {
    run: (h) =>
      h.op.submit('/hosts', { domain: 'cov.example.test', upstreams: 'http://10.0.0.5', policy: 'one_factor', tlsMode: 'off', enabled: '1' }, '/hosts/new'),
    expect: /^host\.create$/,
  },
  'POST /hosts/:domain': {
    setup: (h) => addHost(h.store.db, CLI_ACTOR, { domain: 'edit.example.test', upstreams: 'http://10.0.0.5' }).then(() => undefined),
    run: (h) =>
      h.op.submit(
        '/hosts/edit.example.test',
        { domain: 'edit.example.test', upstreams: 'http://10.0.0.7', policy: 'bypass', tlsMode: 'off', enabled: '1' },
        '/hosts/edit.example.test',
      ),
    expect: /^host\.update$/,
  },
  'POST /hosts/:domain/rules': {
    setup: (h) => addHost(h.store.db, CLI_ACTOR, { domain: 'rules.example.test', upstreams: 'http://10.0.0.5' }).then(() => undefined),
    run: (h) => h.op.submit('/hosts/rules.example.test/rules', { policy: 'bypass', paths: '/health' }, '/hosts/rules.example.test'),
    expect: /^host\.rule\.create$/,
  },
  'POST /hosts/:domain/rules/:id/delete': {
    run: async (h) => {
      const rule = await h.store.db.get<{ id: number }>("SELECT r.id FROM host_rules r JOIN hosts h ON h.id = r.host_id WHERE h.domain = 'rules.example.test'");
      assert.ok(rule, 'the rule made by the previous entry exists');
      return h.op.submit(`/hosts/rules.example.test/rules/${rule.id}/delete`, {}, '/hosts/rules.example.test');
    },
    expect: /^host\.rule\.delete$/,
  },
  'POST /hosts/:domain/delete': { run: (h) => h.op.submit('/hosts/cov.example.test/delete', {}, '/hosts/cov.example.test'), expect: /^host\.delete$/ },

  // Users and their security.
  'POST /users': {
    run: (h) => h.op.submit('/users', { username: 'newbie', password: 'newbie-password-1', email: '' }, '/users/new'),
    expect: /^user\.create$/,
  },
  'POST /users/:username': {
    run: (h) => h.op.submit('/users/newbie', { email: 'newbie@example.test', displayName: 'New Bie', groups: 'family' }, '/users/newbie'),
    expect: /^user\.update$/,
  },
  'POST /users/:username/password': {
    run: (h) => h.op.submit('/users/newbie/password', { password: 'newbie-password-2', password_confirm: 'newbie-password-2' }, '/users/newbie'),
    expect: /^user\.password\.set$/,
  },
  'POST /users/:username/sessions/:id/revoke': {
    run: async (h) => {
      const id = await h.user(uniq('sess'));
      const s = await h.store.db.write((tx) =>
        createSession(tx, {
          kind: 'portal',
          userId: id,
          factors: 1,
          authMethod: 'password',
          remember: false,
          lifetimeS: 3600,
          idleTimeoutS: 600,
          ip: null,
          userAgent: null,
        }),
      );
      const name = (await h.store.db.get<{ username: string }>('SELECT username FROM users WHERE id = ?', [id]))!.username;
      return h.op.submit(`/users/${name}/sessions/${s.id}/revoke`, {}, `/users/${name}/security`);
    },
    expect: /^user\.session\.revoke$/,
  },
  'POST /users/:username/sessions/revoke-all': {
    run: (h) => h.op.submit('/users/newbie/sessions/revoke-all', {}, '/users/newbie/security'),
    expect: /^user\.session\.revoke_all$/,
  },
  'POST /users/:username/totp/reset': {
    setup: (h) => provisionTotp(h.store.db, h.store.vault, CLI_ACTOR, 'newbie').then(() => undefined),
    run: (h) => h.op.submit('/users/newbie/totp/reset', {}, '/users/newbie/security'),
    expect: /^user\.2fa\.reset$/,
  },
  'POST /users/:username/recovery-codes': {
    setup: (h) => provisionTotp(h.store.db, h.store.vault, CLI_ACTOR, 'newbie').then(() => undefined),
    run: (h) => h.op.submit('/users/newbie/recovery-codes', {}, '/users/newbie/security'),
    expect: /^user\.2fa\.recovery_codes$/,
  },
  'POST /users/:username/tokens': {
    run: (h) => h.op.submit('/users/newbie/tokens', { name: 'ci', hosts: '', expires_days: '30' }, '/users/newbie/security'),
    expect: /^token\.create$/,
  },
  'POST /users/:username/tokens/:id/revoke': {
    run: async (h) => {
      const t = await h.store.db.get<{ id: number }>(
        "SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.username = 'newbie' AND t.revoked_at IS NULL",
      );
      assert.ok(t, 'the token made by the previous entry exists');
      return h.op.submit(`/users/newbie/tokens/${t.id}/revoke`, {}, '/users/newbie/security');
    },
    expect: /^token\.revoke$/,
  },
  'POST /users/:username/delete': { run: (h) => h.op.submit('/users/newbie/delete', {}, '/users/newbie'), expect: /^user\.delete$/ },

  // Settings, SSO settings, Caddy.
  'POST /settings/:key': { run: (h) => h.op.submit('/settings/portal.title', { value: 'Coverage' }, '/settings'), expect: /^settings\.update$/ },
  'POST /settings/:key/reset': { run: (h) => h.op.submit('/settings/portal.title/reset', {}, '/settings'), expect: /^settings\.reset$/ },
  'POST /settings/oidc': { run: (h) => h.op.submit('/settings/oidc', { 'oidc.client_id': 'argos-coverage' }, '/settings/oidc'), expect: /^settings\.update$/ },
  'POST /settings/oidc/test': {
    run: (h) => h.op.submit('/settings/oidc/test', { issuer: `http://127.0.0.1:${closedPort}/` }, '/settings/oidc'),
    readOnly: 'probes the identity provider discovery document and shows the report; nothing is stored',
  },
  'POST /settings/oidc/unlink': { run: (h) => h.op.submit('/settings/oidc/unlink', {}, '/settings/oidc'), expect: /^user\.oidc\.unlink$/ },
  'POST /settings/oidc/link': {
    setup: (h) => enableSso(h),
    run: (h) => h.op.submit('/settings/oidc/link', {}, '/settings/oidc'),
    readOnly: 'only starts the redirect to the identity provider; the link itself is made (and audited as user.oidc.link) by the callback',
  },
  'POST /login/oidc/start': {
    setup: (h) => enableSso(h),
    run: async (h) => {
      const b = h.fresh();
      return b.req('POST', '/login/oidc/start', { form: { _csrf: await b.csrf('/login'), next: '/' } });
    },
    expect: /^panel\.oidc\.unavailable$/,
  },
  'POST /login/oidc/2fa': {
    setup: (h) => enableSso(h),
    run: async (h) => {
      const b = h.fresh();
      return b.req('POST', '/login/oidc/2fa', { form: { _csrf: await b.csrf('/login'), code: '123456' } });
    },
    readOnly: 'without a pending SSO second-factor challenge it only refuses; a wrong code on a real challenge is audited as panel.login.2fa_failure',
  },
  'POST /notifications/smtp': {
    run: (h) =>
      h.op.submit(
        '/notifications/smtp',
        { host: '127.0.0.1', port: '2525', tls: 'none', username: '', from: 'argos@example.test', to: 'ops@example.test', password: 'smtp-via-notifications' },
        '/notifications',
      ),
    expect: /^(secret\.set|settings\.update)$/,
  },
  'POST /notifications/webhook': {
    run: (h) => h.op.submit('/notifications/webhook', { url: `http://127.0.0.1:${closedPort}/hook` }, '/notifications'),
    expect: /^settings\.update$/,
  },
  'POST /notifications/events': {
    setup: (h) => changeSetting(h.store.db, CLI_ACTOR, 'notify.email_events', 'ban').then(() => undefined),
    run: (h) => h.op.submit('/notifications/events', {}, '/notifications'),
    expect: /^settings\.update$/,
  },
  'POST /notifications/test/:channel': {
    run: (h) => h.op.submit('/notifications/test/webhook', {}, '/notifications'),
    readOnly: 'sends a test message; only its delivery is recorded, in the notification log (a log like the decision log, not configuration)',
  },
  'POST /caddy/apply': { run: (h) => h.op.submit('/caddy/apply', {}, '/system'), expect: /^caddy\.apply(\.failed)?$/ },

  // Secrets and backups (this issue).
  'POST /secrets/:name': { run: (h) => h.op.submit('/secrets/smtp.password', { value: 'smtp-coverage-value' }, '/secrets'), expect: /^secret\.set$/ },
  'POST /secrets/:name/clear': { run: (h) => h.op.submit('/secrets/smtp.password/clear', {}, '/secrets'), expect: /^secret\.delete$/ },
  'POST /backups': { run: (h) => h.op.submit('/backups', {}, '/backups'), expect: /^backup\.create$/ },
  'POST /backups/:name/restore': {
    run: async (h) => h.op.submit(`/backups/${await h.latestBackup()}/restore`, { confirm: '1' }, '/backups'),
    expect: /^backup\.restore$/,
  },
  'POST /backups/restore-upload': {
    run: async (h) => {
      const file = path.join(h.config.dataDir, 'backups', await h.latestBackup());
      const boundary = 'argoscoverageboundary';
      const body = Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${await h.op.csrf('/backups')}\r\n`),
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="confirm"\r\n\r\n1\r\n`),
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n`),
        fs.readFileSync(file),
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      return h.op.req('POST', '/backups/restore-upload', { raw: { type: `multipart/form-data; boundary=${boundary}`, body } });
    },
    expect: /^backup\.restore$/,
  },

  // JSON API.
  'POST /api/v1/hosts': {
    run: (h) => h.op.api('POST', '/api/v1/hosts', { domain: 'api.example.test', upstreams: ['http://10.0.0.8'], tlsMode: 'off' }),
    expect: /^host\.create$/,
  },
  'PUT /api/v1/hosts/:domain': { run: (h) => h.op.api('PUT', '/api/v1/hosts/api.example.test', { policy: 'bypass' }), expect: /^host\.update$/ },
  'DELETE /api/v1/hosts/:domain': { run: (h) => h.op.api('DELETE', '/api/v1/hosts/api.example.test'), expect: /^host\.delete$/ },
  'POST /api/v1/users': { run: (h) => h.op.api('POST', '/api/v1/users', { username: 'apiuser', password: 'apiuser-password-1' }), expect: /^user\.create$/ },
  'PUT /api/v1/users/:username': { run: (h) => h.op.api('PUT', '/api/v1/users/apiuser', { displayName: 'API User' }), expect: /^user\.update$/ },
  'POST /api/v1/users/:username/password': {
    run: (h) => h.op.api('POST', '/api/v1/users/apiuser/password', { password: 'apiuser-password-2' }),
    expect: /^user\.password\.set$/,
  },
  'DELETE /api/v1/users/:username': { run: (h) => h.op.api('DELETE', '/api/v1/users/apiuser'), expect: /^user\.delete$/ },
  'PUT /api/v1/settings/:key': { run: (h) => h.op.api('PUT', '/api/v1/settings/portal.title', { value: 'Via API' }), expect: /^settings\.update$/ },
  'POST /api/v1/caddy/apply': { run: (h) => h.op.api('POST', '/api/v1/caddy/apply'), expect: /^caddy\.apply(\.failed)?$/ },
  'PUT /api/v1/secrets/:name': { run: (h) => h.op.api('PUT', '/api/v1/secrets/webhook.token', { value: 'hook-coverage-value' }), expect: /^secret\.set$/ },
  'DELETE /api/v1/secrets/:name': { run: (h) => h.op.api('DELETE', '/api/v1/secrets/webhook.token'), expect: /^secret\.delete$/ },
  'POST /api/v1/backups': { run: (h) => h.op.api('POST', '/api/v1/backups'), expect: /^backup\.create$/ },
  'POST /api/v1/backups/:name/restore': {
    run: async (h) => h.op.api('POST', `/api/v1/backups/${await h.latestBackup()}/restore`, { confirm: true }),
    expect: /^backup\.restore$/,
  },
};

let closedPort = 1;
async function enableSso(h: H): Promise<void> {
  await changeSetting(h.store.db, CLI_ACTOR, 'oidc.issuer', `http://127.0.0.1:${closedPort}/`);
  await changeSetting(h.store.db, CLI_ACTOR, 'oidc.client_id', 'argos-coverage');
  await changeSetting(h.store.db, CLI_ACTOR, 'oidc.enabled', 'true');
}

/** A digest of every table but the append-only logs (audit, decisions, access, notifications) and sessions' last-seen times: a read-only route changes none of it. */
async function dataDigest(store: Store): Promise<string> {
  const logs = ['audit_log', 'decision_log', 'access_log', 'notification_log'];
  const tables = (
    await store.db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
  ).filter((t) => !logs.includes(t.name));
  const parts: string[] = [];
  for (const { name } of tables) {
    const sql = name === 'sessions' ? 'SELECT id, revoked_at, reauth_at, expires_at FROM sessions ORDER BY id' : `SELECT * FROM "${name}"`;
    parts.push(name, JSON.stringify(await store.db.all(sql)));
  }
  return parts.join('\n');
}

let tmp: string;
let store: Store;
let server: http.Server;
let h: H;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-audit-coverage-'));
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  closedPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const config = loadConfig({
    ARGOS_MASTER_KEY: MASTER.toString('hex'),
    ARGOS_DATA_DIR: tmp,
    ARGOS_PORTAL_URL: 'https://auth.example.test',
    ARGOS_CADDY_ADMIN: `http://127.0.0.1:${closedPort}`,
  });
  store = await openStore(config, 'migrator');
  await addUser(store.db, CLI_ACTOR, { username: 'alice', password: PW, isAdmin: true });
  const regulator = new Regulator({ limits: () => ({ maxFailures: 1000, windowS: 300, banTimeS: 900 }) });
  // The real Caddy integration, pointed at a closed port: every apply fails and is audited as caddy.apply.failed.
  const caddy = new CaddySync({ config, db: store.db, log: silentLogger });
  const app = createPanel({ config, db: store.db, vault: store.vault, regulator, log: silentLogger, caddy });
  server = http.createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await createBackup({ db: store.db, vault: store.vault, masterKey: MASTER, dataDir: tmp }, { kind: 'manual', actor: CLI_ACTOR });
  h = {
    op: await new Browser(url).signedIn('alice'),
    url,
    store,
    config,
    fresh: () => new Browser(url),
    async user(name, admin = false) {
      return (await addUser(store.db, CLI_ACTOR, { username: name, password: PW, isAdmin: admin })).id;
    },
    async latestBackup() {
      const row = await store.db.get<{ name: string }>(
        "SELECT name FROM backups WHERE kind <> 'safety' AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 1",
      );
      return row!.name;
    },
  };
});

after(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => server?.close(() => r()));
  await store?.db.close();
});

/** The app's mutating routes, as "METHOD /path", from every router mounted on it. */
function mutatingRoutes(app: { middleware: unknown[] }): string[] {
  const out = new Set<string>();
  for (const mw of app.middleware) {
    const router = (mw as { router?: { stack: Array<{ methods: string[]; path: string }> } }).router;
    for (const layer of router?.stack ?? []) {
      for (const m of layer.methods) if (['POST', 'PUT', 'DELETE', 'PATCH'].includes(m)) out.add(`${m} ${layer.path}`);
    }
  }
  return [...out];
}

test('every mutating panel route and API endpoint has an audit test entry', () => {
  const app = createPanel({
    config: h.config,
    db: store.db,
    vault: store.vault,
    regulator: new Regulator({ limits: () => ({ maxFailures: 5, windowS: 300, banTimeS: 900 }) }),
    log: silentLogger,
    caddy: {
      apply: async () => ({ ok: true }),
      status: async () => ({ reachable: true, inSync: true, lastError: null, lastAppliedAt: 0 }),
      preview: async () => ({}),
    },
  });
  const routes = mutatingRoutes(app as unknown as { middleware: unknown[] });
  assert.ok(routes.length > 30, `the enumeration found the routes (${routes.length})`);
  const missing = routes.filter((r) => !Object.hasOwn(ROUTES, r));
  assert.deepEqual(
    missing.map((r) => `route ${r} has no audit test entry`),
    [],
  );
  const stale = Object.keys(ROUTES).filter((k) => !routes.includes(k));
  assert.deepEqual(
    stale.map((k) => `audit test entry ${k} matches no route`),
    [],
  );
});

test('each mutating route writes an audit entry (read-only POSTs change nothing)', async (t) => {
  for (const [route, entry] of Object.entries(ROUTES)) {
    await t.test(route, async () => {
      await entry.setup?.(h);
      const lastId = (await store.db.get<{ id: number | null }>('SELECT max(id) AS id FROM audit_log'))?.id ?? 0;
      const since = Date.now();
      const digest = 'readOnly' in entry ? await dataDigest(store) : '';
      const res = await entry.run(h);
      // 502/503 are fine (Caddy or the identity provider is unreachable on purpose); 500 never is.
      assert.notEqual(res.status, 500, `${route} answered 500: ${res.text.slice(0, 300)}`);
      // A restore replaces the trail with the backup's (lower ids): entries are found by id or by time.
      const added = await store.db.all<AuditRow>('SELECT * FROM audit_log WHERE id > ? OR ts >= ? ORDER BY id', [lastId, since]);
      if ('readOnly' in entry) {
        assert.equal(await dataDigest(store), digest, `${route} is listed as read-only (${entry.readOnly}) but changed data`);
      } else {
        assert.ok(
          added.some((a) => entry.expect.test(a.action)),
          `${route} (status ${res.status}) wrote no ${entry.expect} audit entry; it wrote: ${added.map((a) => a.action).join(', ') || 'nothing'}\n${res.text.slice(0, 300)}`,
        );
      }
    });
  }
});
