/**
 * Seeing what happens, black-box: the real panel (notifier, access-log ingestor, metrics) with real Caddy writing
 * its JSON access log, a real SMTP server and a webhook receiver on loopback. A brute-forcer gets banned → one
 * e-mail; real traffic through Caddy shows up on the dashboard and the traffic page; /metrics parses as
 * Prometheus text and its counters move with traffic. The dashboard screenshot (Chromium) lands in
 * test-artifacts/screenshots/ (ARGOS_UPDATE_SCREENSHOTS=1 also refreshes docs/screenshots/dashboard.png).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as OTPAuth from 'otpauth';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';
import { Database, type Param } from '@argos/shared/db/sqlite';
import { insertAccessEntries, type AccessEntry } from '@argos/shared/repos/access-log';
import { Browser } from '../../services/panel/src/testing.ts';
import { createArgos, freePort, portalLogin, rawRequest, startEcho, waitFor, ROOT, type Argos } from '../lib/argos.ts';
import { ARTIFACTS, launchChromium, screenshot } from '../lib/chromium.ts';

const SMTP_PASSWORD = 'relay-' + randomBytes(6).toString('hex');
const HOOK_TOKEN = 'hook-' + randomBytes(6).toString('hex');
const OPS_PASSWORD = 'ops-password-2026';
const API = { Accept: 'application/json' };

/** Parses Prometheus text exposition strictly enough to catch a malformed line; returns samples by series. */
function parseProm(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    if (line.startsWith('# HELP ')) continue;
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t) {
      typed.add(t[1]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|Nan|\+Inf|-Inf)$/.exec(line);
    assert.ok(m, `not Prometheus text: ${line}`);
    const base = m[1]!.replace(/_(bucket|sum|count|total)$/, '');
    assert.ok(typed.has(m[1]!) || typed.has(base), `sample without # TYPE: ${line}`);
    samples.set(m[1]! + (m[2] ?? ''), Number(m[3]));
  }
  return samples;
}

const sum = (samples: Map<string, number>, name: string) => [...samples].filter(([k]) => k === name || k.startsWith(name + '{')).reduce((a, [, v]) => a + v, 0);

describe('notifications, traffic, dashboard and metrics with real Caddy', () => {
  let argos: Argos;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let smtp: SMTPServer;
  let hook: http.Server;
  const inbox: Array<{ subject: string; text: string; raw: string }> = [];
  const hooks: Array<{ auth: string | undefined; body: Record<string, unknown> }> = [];
  let panel: string;
  let ops: Browser;
  let totpSecret: string;

  const cliAsync = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'services/panel/bin/argos.mjs'), ...args], { env: argos.env, cwd: argos.dataDir });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });

  const metrics = async (localAddress?: string) => {
    const r = await rawRequest({ port: argos.ports.panel, path: '/metrics', localAddress });
    return { status: r.status, type: String(r.headers['content-type']), text: r.body };
  };

  before(async () => {
    echo = await startEcho();
    const smtpPort = await freePort();
    smtp = new SMTPServer({
      secure: false,
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      authMethods: ['PLAIN', 'LOGIN'],
      logger: false,
      onAuth: (a, _s, cb) => (a.username === 'argos' && a.password === SMTP_PASSWORD ? cb(null, { user: 'argos' }) : cb(new Error('Invalid username or password'))),
      onData(stream, _session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks);
          simpleParser(raw).then((m) => (inbox.push({ subject: m.subject ?? '', text: m.text ?? '', raw: raw.toString('utf8') }), cb()), cb);
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(smtpPort, '127.0.0.1', r));
    const hookPort = await freePort();
    hook = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        hooks.push({ auth: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(hookPort, '127.0.0.1', r));

    argos = await createArgos({ ARGOS_TRUSTED_PROXIES: '127.0.0.1/32' });
    const ok = (r: { code: number; stdout: string; stderr: string }) => (assert.equal(r.code, 0, r.stderr), r.stdout);
    const up = `http://127.0.0.1:${echo.port}`;
    ok(argos.cli(['user', 'add', 'alice', '--password-stdin'], 'wonderland-2026\n'));
    ok(argos.cli(['admin', 'create', 'ops', '--password-stdin'], `${OPS_PASSWORD}\n`));
    totpSecret = JSON.parse(ok(argos.cli(['user', 'totp', 'enroll', 'ops', '--json']))).secret;
    ok(argos.cli(['host', 'add', 'app.example.test', '--upstream', up, '--tls', 'off', '--policy', 'one_factor']));
    ok(argos.cli(['host', 'add', 'open.example.test', '--upstream', up, '--tls', 'off', '--policy', 'bypass']));
    for (const [k, v] of [
      ['smtp.host', '127.0.0.1'],
      ['smtp.port', String(smtpPort)],
      ['smtp.tls', 'none'],
      ['smtp.username', 'argos'],
      ['smtp.from', 'argos@example.test'],
      ['smtp.to', 'ops@example.test'],
      ['webhook.url', `http://127.0.0.1:${hookPort}/hook`],
      ['notify.group_wait', '1s'],
      ['regulation.max_failures', '3'],
    ]) {
      ok(argos.cli(['settings', 'set', k!, v!]));
    }
    ok(argos.cli(['secret', 'set', 'smtp.password', '--stdin'], SMTP_PASSWORD));
    ok(argos.cli(['secret', 'set', 'webhook.token', '--stdin'], HOOK_TOKEN));
    await argos.start();
    panel = `http://127.0.0.1:${argos.ports.panel}`;
  });

  after(async () => {
    await argos?.stop();
    await echo?.close();
    await new Promise<void>((r) => (smtp ? smtp.close(() => r()) : r()));
    hook?.closeAllConnections();
    await new Promise<void>((r) => (hook ? hook.close(() => r()) : r()));
  });

  test('argos notify test smtp|webhook delivers through each channel and records it', async () => {
    // Not argos.cli (spawnSync): the receivers live in this process, whose event loop must keep running.
    const s = await cliAsync(['notify', 'test', 'smtp']);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /Test e-mail sent/);
    assert.ok(inbox.some((m) => m.subject === '[Argos] Test notification (smtp)'));
    const w = await cliAsync(['notify', 'test', 'webhook', '--json']);
    assert.equal(JSON.parse(w.stdout).ok, true, w.stderr);
    assert.ok(hooks.some((h) => h.body.event === 'test' && h.auth === `Bearer ${HOOK_TOKEN}`));
    const history = JSON.parse(argos.cli(['notify', 'history', '--json']).stdout) as Array<{ channel: string; outcome: string }>;
    assert.deepEqual(history.map((h) => `${h.channel}:${h.outcome}`).sort(), ['smtp:sent', 'webhook:sent']);
  });

  test('a brute-forcer is banned → exactly one mail with the right subject and no secret in it', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await portalLogin(argos, `mallory${i}`, 'guess-password', `http://app.example.test:${argos.ports.caddy}/`, '127.0.0.9');
      assert.equal(r.status, 401);
    }
    const isBan = (s: string) => s.startsWith('[Argos] Login ban');
    await waitFor('the ban mail', async () => inbox.some((m) => isBan(m.subject)), 20_000);
    await new Promise((r) => setTimeout(r, 2500)); // past the group wait: a second ban message would be here by now
    const bans = inbox.filter((m) => isBan(m.subject));
    assert.equal(bans.length, 1);
    assert.match(bans[0]!.subject, /^\[Argos\] Login ban: 127\.0\.0\.9 until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(strike 1\)$/);
    for (const secret of [SMTP_PASSWORD, HOOK_TOKEN, 'guess-password', argos.env.ARGOS_MASTER_KEY!]) assert.ok(!bans[0]!.raw.includes(secret));
    assert.doesNotMatch(bans[0]!.raw, /https?:\/\//);
    await waitFor('the ban webhook', async () => hooks.some((h) => h.body.event === 'ban'));
    // The banned client keeps knocking: answered by the gatekeeper, counted as denied.
    for (let i = 0; i < 3; i++) assert.equal((await argos.viaCaddy(`open.example.test:${argos.ports.caddy}`, '/after-ban', { localAddress: '127.0.0.9', headers: API })).status, 429);
  });

  test('real traffic through Caddy is ingested; the dashboard and traffic pages show it to a signed-in operator', async () => {
    const open = `open.example.test:${argos.ports.caddy}`;
    for (let i = 0; i < 12; i++) assert.equal((await argos.viaCaddy(open, `/hello?code=SECRETCODE${i}&state=s`, { headers: API })).status, 200);
    assert.equal((await argos.viaCaddy(`app.example.test:${argos.ports.caddy}`, '/private', { headers: API })).status, 401);
    assert.equal((await argos.viaCaddy(`unknown.example.test:${argos.ports.caddy}`, '/wp-login.php', { headers: API, localAddress: '127.0.0.3' })).status, 403);
    const accessLog = path.join(argos.env.ARGOS_DATA_DIR!, 'logs', 'caddy-access.log');
    await waitFor('Caddy writing its access log', async () => fs.existsSync(accessLog) && fs.readFileSync(accessLog, 'utf8').includes('/hello?code=SECRETCODE11'));
    await waitFor('the ingestion', async () => sum(parseProm((await metrics()).text), 'argos_traffic_ingested_total') >= 14, 15_000);

    ops = new Browser(panel);
    const login = await ops.login('ops', OPS_PASSWORD);
    assert.equal(login.status, 303);
    const code = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(totpSecret), digits: 6, period: 30, algorithm: 'SHA1' }).generate();
    const second = await ops.submit('/login/2fa', { code }, '/login/2fa');
    assert.equal(second.status, 303, second.text.slice(0, 300));

    const dash = await ops.get('/?range=hour');
    assert.equal(dash.status, 200);
    assert.match(dash.text, /<svg class="bars"[^>]*aria-label="Requests by status: (\d+) in total"/);
    const requests = Number(/aria-label="Requests by status: (\d+) in total"/.exec(dash.text)![1]);
    assert.ok(requests >= 14, `requests charted: ${requests}`);
    assert.match(dash.text, /aria-label="Gatekeeper decisions by outcome: \d+ in total"/);
    assert.match(dash.text, /<code>127\.0\.0\.9<\/code>/, 'the banned client is among the top denied clients');
    assert.match(dash.text, /<code>regulation_ban<\/code>/, 'decisions by reason');
    assert.match(dash.text, /<code>LAN<\/code>/, 'top countries');
    assert.match(dash.text, /<strong>Caddy<\/strong>: reachable and in sync/);
    assert.match(dash.text, /<strong>E-mail<\/strong>: last success/);
    assert.match(dash.text, /<strong>Gatekeeper<\/strong>: answering/);
    assert.doesNotMatch(dash.text, /style=|<script/);
    const perHost = await ops.get(`/?range=hour&host=open.example.test`);
    assert.match(perHost.text, /aria-label="Requests by status: (1[2-9]|[2-9]\d|\d{3,}) in total"/);

    const traffic = await ops.get('/traffic?range=hour');
    assert.equal(traffic.status, 200);
    assert.match(traffic.text, /open\.example\.test/);
    assert.match(traffic.text, /<code>\/hello<\/code>/);
    assert.doesNotMatch(traffic.text, /SECRETCODE/, 'no query string is stored or shown');
    assert.match(traffic.text, /<code>access_log<\/code>/, 'disk use of the log tables');

    const notifications = await ops.get('/notifications');
    assert.equal(notifications.status, 200);
    assert.match(notifications.text, /Login ban: 127\.0\.0\.9/);
    assert.match(notifications.text, /A password is stored \(encrypted\)\. Leave blank to keep it\./);
    assert.ok(!notifications.text.includes(SMTP_PASSWORD) && !notifications.text.includes(HOOK_TOKEN));
  });

  test('the panel form saves channel settings (password write-only) and "Send test" reports the outcome', async () => {
    const page = await ops.get('/notifications');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const save = await ops.req('POST', '/notifications/smtp', {
      form: { _csrf: csrf, host: '127.0.0.1', port: String(JSON.parse(argos.cli(['settings', 'get', 'smtp.port', '--json']).stdout).value), tls: 'none', username: 'argos', password: '', from: 'argos@example.test', to: 'ops@example.test, second@example.test' },
    });
    assert.equal(save.status, 303, save.text.slice(0, 300));
    assert.equal(JSON.parse(argos.cli(['settings', 'get', 'smtp.to', '--json']).stdout).value.length, 2);
    const bad = await ops.req('POST', '/notifications/smtp', { form: { _csrf: csrf, host: '127.0.0.1', port: '99999', tls: 'none', username: 'argos', from: 'argos@example.test', to: 'ops@example.test' } });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /must be at most 65535/);
    const tests = () => inbox.filter((m) => m.subject === '[Argos] Test notification (smtp)').length;
    const before = tests();
    const sent = await ops.req('POST', '/notifications/test/smtp', { form: { _csrf: csrf } });
    assert.equal(sent.status, 303);
    assert.equal(tests(), before + 1, 'the stored password still works (blank kept it)');
  });

  test('/metrics parses as Prometheus text and its counters move with traffic; only allowed networks may read it', async () => {
    const first = await metrics();
    assert.equal(first.status, 200);
    assert.match(first.type, /^text\/plain; version=0\.0\.4/);
    const a = parseProm(first.text);
    for (const name of ['argos_traffic_lines_total', 'argos_traffic_ingested_total', 'argos_traffic_dropped_total', 'argos_notify_queue_depth', 'argos_notify_dropped_total', 'argos_traffic_queue_depth']) {
      assert.ok([...a.keys()].some((k) => k === name || k.startsWith(name + '{')), `missing ${name}`);
    }
    // The ban and the operator's sign-in (admin_login) were mailed by the panel's notifier.
    const smtpSent = async () => parseProm((await metrics()).text).get('argos_notifications_total{channel="smtp",outcome="sent"}') ?? 0;
    await waitFor('two notification mails counted', async () => (await smtpSent()) >= 2, 10_000).catch(async (e) => {
      throw new Error(`${e.message}: ${await smtpSent()} counted; inbox: ${inbox.map((m) => m.subject).join(' | ')}`);
    });
    const gk1 = parseProm((await rawRequest({ port: argos.ports.gatekeeper, path: '/metrics' })).body);
    for (let i = 0; i < 10; i++) await argos.viaCaddy(`open.example.test:${argos.ports.caddy}`, `/more/${i}`, { headers: API });
    await waitFor('the counters to move', async () => sum(parseProm((await metrics()).text), 'argos_traffic_ingested_total') >= sum(a, 'argos_traffic_ingested_total') + 10, 15_000);
    const b = parseProm((await metrics()).text);
    assert.ok(sum(b, 'argos_traffic_lines_total') >= sum(a, 'argos_traffic_lines_total') + 10);
    assert.equal(sum(b, 'argos_traffic_dropped_total'), 0);
    const gk2 = parseProm((await rawRequest({ port: argos.ports.gatekeeper, path: '/metrics' })).body);
    assert.ok(sum(gk2, 'argos_decisions_total') >= sum(gk1, 'argos_decisions_total') + 10, 'the gatekeeper counted the decisions');

    assert.equal((await metrics('127.0.0.2')).status, 200, 'loopback is allowed by default');
    assert.equal(argos.cli(['settings', 'set', 'metrics.allowed_networks', '127.0.0.1/32']).code, 0);
    await waitFor('the panel to apply the setting', async () => (await metrics('127.0.0.2')).status === 403, 10_000);
    assert.equal((await metrics()).status, 200);
  });

  test('dashboard screenshot in Chromium (desktop and phone widths)', async () => {
    // Demo history for the picture: a day of generated requests and decisions next to the real traffic above.
    const db = await Database.open(path.join(argos.env.ARGOS_DATA_DIR!, 'argos.db'));
    try {
      const now = Date.now();
      const hosts = ['app.example.test', 'open.example.test', 'media.example.test'];
      const entries: AccessEntry[] = [];
      const decisions: Param[][] = [];
      for (let i = 0; i < 6000; i++) {
        const ts = now - Math.floor(((i * 7919) % 86_400) * 1000);
        const hour = new Date(ts).getUTCHours();
        if ((i * 31) % 100 > 40 + 50 * Math.sin((hour / 24) * Math.PI)) continue;
        const r = (i * 2654435761) % 1000;
        const status = r < 820 ? 200 : r < 900 ? 302 : r < 960 ? 403 : r < 990 ? 429 : 502;
        const ip = r >= 900 && r < 990 ? `203.0.113.${(r % 6) + 1}` : `198.51.100.${(i % 40) + 1}`;
        const country = ['DE', 'FR', 'NL', 'US', 'GB', 'CN', 'BR'][r >= 900 ? 5 : i % 5]!;
        entries.push({ ts, host: hosts[i % 3]!, method: 'GET', path: ['/', '/api/items', '/library', '/login'][i % 4]!, status, durationMs: 2 + (i % 50), bytes: 500 + (i % 4000), ip, country });
        const verdict = status === 403 ? 'deny' : status === 429 ? 'rate_limited' : status === 302 ? 'login' : 'allow';
        const reason = verdict === 'deny' ? ['geo_not_allowed', 'crowdsec_ban', 'policy_deny'][i % 3]! : verdict === 'rate_limited' ? 'rate_limited' : verdict === 'login' ? 'no_session' : 'session';
        decisions.push([ts, `demo-${i}`, hosts[i % 3]!, 'GET', '/', ip, country, null, verdict, reason, status === 502 ? 200 : status === 302 ? 302 : status, 400]);
      }
      await db.write(async (tx) => {
        await insertAccessEntries(tx, entries);
        for (const d of decisions)
          await tx.run('INSERT INTO decision_log (ts, request_id, host, method, path, ip, country, user, verdict, reason, status, latency_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', d);
      });
    } finally {
      await db.close();
    }
    // The operator's session, without a pending flash message.
    const cookies = () => [...ops.jar].filter(([name]) => name !== 'argos_panel_flash').map(([name, value]) => ({ name, value, url: panel }));
    const browser = await launchChromium();
    try {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      await ctx.addCookies(cookies());
      const page = await ctx.newPage();
      const res = await page.goto(`${panel}/?range=day`);
      assert.equal(res?.status(), 200);
      assert.equal(await page.locator('svg.bars').count(), 2);
      const shot = path.join(ARTIFACTS, 'dashboard.png');
      await screenshot(page, { path: shot, fullPage: true });
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true });
      await phone.addCookies(cookies());
      const p2 = await phone.newPage();
      await p2.goto(`${panel}/?range=day`);
      const overflow = Number(await p2.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'));
      assert.ok(overflow <= 0, `the dashboard scrolls sideways on a phone by ${overflow}px`);
      await screenshot(p2, { path: path.join(ARTIFACTS, 'dashboard-phone.png') });
      assert.ok(fs.statSync(shot).size > 20_000);
      if (process.env.ARGOS_UPDATE_SCREENSHOTS === '1') {
        fs.mkdirSync(path.join(ROOT, 'docs', 'screenshots'), { recursive: true });
        fs.copyFileSync(shot, path.join(ROOT, 'docs', 'screenshots', 'dashboard.png'));
      }
    } finally {
      await browser.close();
    }
  });
});
