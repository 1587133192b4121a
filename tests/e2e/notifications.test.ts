/**
 * Notifications against real receivers on loopback: an SMTP server (smtp-server, AUTH on, STARTTLS off) parsed
 * with mailparser, and a node:http webhook receiver. The notifier runs in-process over a fresh migrated database
 * and tails its audit log exactly as it does inside the panel.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';
import { openStore, type Store } from '@argos/shared/store';
import { CLI_ACTOR, recordEvent, type Actor } from '@argos/shared/audit';
import { changeSetting, storeSecret } from '@argos/shared/commands/settings';
import { loadSettings, type SettingsMap } from '@argos/shared/settings';
import { listDeliveries } from '@argos/shared/repos/notifications';
import { silentLogger } from '@argos/shared/log';
import { Notifier } from '../../services/panel/src/notify/notifier.ts';
import { smtpChannel, webhookChannel } from '../../services/panel/src/notify/channels.ts';
import { freePort, waitFor } from '../lib/argos.ts';

const SMTP_PASSWORD = 'smtp-pass-' + randomBytes(6).toString('hex');
const WEBHOOK_TOKEN = 'hook-token-' + randomBytes(6).toString('hex');
const SYSTEM: Actor = { name: 'system', ip: '203.0.113.7' };

interface Mail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  raw: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('notifications through a real SMTP server and a webhook receiver', () => {
  let tmp: string;
  let store: Store;
  let settings: SettingsMap;
  let smtp: SMTPServer;
  let smtpPort: number;
  const inbox: Mail[] = [];
  let hook: http.Server;
  let hookPort: number;
  const hooks: Array<{ headers: http.IncomingHttpHeaders; body: Record<string, unknown> }> = [];
  let notifier: Notifier;

  const set = async (key: string, value: string) => {
    await changeSetting(store.db, CLI_ACTOR, key, value);
    settings = await loadSettings(store.db);
  };

  const newNotifier = (opts: Partial<Notifier['opts']> = {}, country?: (ip: string) => string | null) =>
    new Notifier({
      db: store.db,
      log: silentLogger,
      settings: () => settings,
      channels: { smtp: smtpChannel(store), webhook: webhookChannel(store) },
      country,
      opts: { pollMs: 50, groupWaitMs: () => 300, throttleMs: () => 1500, backoffMs: 100, ...opts },
    });

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-notify-'));
    store = await openStore({ dataDir: tmp, masterKey: randomBytes(32) }, 'migrator');
    smtpPort = await freePort();
    smtp = new SMTPServer({
      secure: false,
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: false,
      logger: false,
      onAuth(a, _s, cb) {
        if (a.username === 'argos' && a.password === SMTP_PASSWORD) cb(null, { user: a.username });
        else cb(new Error('Invalid username or password'));
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks);
          simpleParser(raw).then(
            (m) => {
              inbox.push({
                from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
                to: session.envelope.rcptTo.map((r) => r.address),
                subject: m.subject ?? '',
                text: m.text ?? '',
                raw: raw.toString('utf8'),
              });
              cb();
            },
            (err: Error) => cb(err),
          );
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(smtpPort, '127.0.0.1', r));
    hook = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        hooks.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        res.writeHead(204).end();
      });
    });
    hookPort = await freePort();
    await new Promise<void>((r) => hook.listen(hookPort, '127.0.0.1', r));

    settings = await loadSettings(store.db);
    await set('smtp.host', '127.0.0.1');
    await set('smtp.port', String(smtpPort));
    await set('smtp.tls', 'none');
    await set('smtp.username', 'argos');
    await set('smtp.from', 'argos@example.test');
    await set('smtp.to', 'admin@example.test');
    await storeSecret(store.db, store.vault, CLI_ACTOR, 'smtp.password', SMTP_PASSWORD);
    await set('webhook.url', `http://127.0.0.1:${hookPort}/argos`);
    await storeSecret(store.db, store.vault, CLI_ACTOR, 'webhook.token', WEBHOOK_TOKEN);
  });

  beforeEach(async () => {
    await notifier?.stop();
    inbox.length = 0;
    hooks.length = 0;
    await store.db.write((tx) => tx.run('DELETE FROM notification_log'));
  });

  after(async () => {
    await notifier?.stop();
    await new Promise<void>((r) => smtp.close(() => r()));
    hook.closeAllConnections();
    await new Promise<void>((r) => hook.close(() => r()));
    await store.db.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a ban → exactly one mail with the right subject, and neither a secret nor a link in it', async () => {
    notifier = newNotifier();
    await notifier.start();
    const until = Date.UTC(2030, 0, 2, 3, 4);
    // Written as a buggy module might: a secret and a login link in the details (appendAudit would have redacted the secret).
    const details = JSON.stringify({ until, strikes: 1, reason: 'too many failed logins; see https://auth.example.test/login?rd=https%3A%2F%2Fapp.example.test%2F', password: 'hunter2-in-details', session_token: 'tok-in-details' });
    await store.db.write((tx) =>
      tx.run("INSERT INTO audit_log (ts, actor, action, target, ip, user_agent, details, prev_hash, hash) VALUES (?, 'system', 'regulation.ban', 'client:203.0.113.7', '203.0.113.7', NULL, ?, '', '')", [Date.now(), details]),
    );
    await waitFor('the ban mail', async () => inbox.length >= 1, 10_000);
    await sleep(800); // longer than the group wait: a second message would have arrived by now
    assert.equal(inbox.length, 1, 'exactly one mail');
    const mail = inbox[0]!;
    assert.equal(mail.subject, '[Argos] Login ban: 203.0.113.7 until 2030-01-02 03:04 UTC (strike 1)');
    assert.equal(mail.from, 'argos@example.test');
    assert.deepEqual(mail.to, ['admin@example.test']);
    for (const secret of [SMTP_PASSWORD, WEBHOOK_TOKEN, 'hunter2-in-details', 'tok-in-details']) assert.ok(!mail.raw.includes(secret), `the mail carries ${secret}`);
    assert.doesNotMatch(mail.raw, /https?:\/\//, 'the mail carries a link');
    assert.match(mail.text, /<auth\.example\.test>/, 'a link is reduced to its host name');
    // The webhook got the same event as JSON with the bearer token, and no secret either.
    await waitFor('the ban webhook', async () => hooks.length >= 1);
    const h = hooks[0]!;
    assert.equal(h.headers.authorization, `Bearer ${WEBHOOK_TOKEN}`);
    assert.equal(h.body.event, 'ban');
    assert.equal(typeof h.body.time, 'string');
    assert.match(String(h.body.summary), /^Login ban: 203\.0\.113\.7/);
    assert.ok(!JSON.stringify(h.body).includes('hunter2') && !JSON.stringify(h.body).includes('tok-in-details'));
    assert.doesNotMatch(JSON.stringify(h.body), /https?:\/\//);
    const history = await listDeliveries(store.db);
    assert.deepEqual(history.map((r) => [r.channel, r.outcome]).sort(), [['smtp', 'sent'], ['webhook', 'sent']]);
  });

  test('the webhook receives the JSON {event, time, summary, details} with the bearer token', async () => {
    notifier = newNotifier();
    await notifier.start();
    await recordEvent(store.db, { name: 'admin:alice', ip: '192.0.2.10' }, { action: 'token.create', target: 'alice', details: { name: 'backup-script', token_hash: 'abc' } });
    await waitFor('the webhook call and the mail', async () => hooks.length >= 1 && inbox.length >= 1);
    const h = hooks[0]!;
    assert.equal(h.headers['content-type'], 'application/json');
    assert.equal(h.headers.authorization, `Bearer ${WEBHOOK_TOKEN}`);
    assert.deepEqual(Object.keys(h.body).sort(), ['details', 'event', 'summary', 'time']);
    assert.equal(h.body.event, 'token_created');
    assert.equal(h.body.summary, 'API token created: alice by admin:alice');
    const d = h.body.details as Record<string, unknown>;
    assert.equal(d.name, 'backup-script');
    assert.equal(d.token_hash, '[redacted]');
    assert.ok(Date.now() - Date.parse(String(h.body.time)) < 60_000);
  });

  test('a burst of 1,000 bans → one digest (top IPs), then held by the throttle and sent as the next message', async () => {
    notifier = newNotifier({ groupWaitMs: () => 1000, throttleMs: () => 6000 }); // generous: a loaded CI machine must not end the window early
    await notifier.start();
    const now = Date.now();
    await store.db.write(async (tx) => {
      for (let i = 0; i < 1000; i++) {
        const ip = `198.51.100.${i % 20 === 0 ? 7 : (i % 40) + 10}`;
        await tx.run("INSERT INTO audit_log (ts, actor, action, target, ip, details, prev_hash, hash) VALUES (?, 'system', 'regulation.ban', ?, ?, '{}', '', '')", [now + i, `client:${ip}`, ip]);
      }
    });
    await waitFor('the digest', async () => inbox.length >= 1, 10_000);
    await sleep(600);
    assert.equal(inbox.length, 1, 'one message for the whole burst');
    assert.match(inbox[0]!.subject, /^\[Argos\] 1,000 login bans in the last 1 minute: top ips 198\.51\.100\.7 \(50\)/);
    assert.match(inbox[0]!.text, /Top IPs:\n {2}198\.51\.100\.7\s+50\n/);
    await waitFor('the digest webhook', async () => hooks.length >= 1);
    assert.equal(hooks.length, 1);
    assert.equal((hooks[0]!.body.details as { count: number }).count, 1000);

    // One more ban inside the throttle window: held (recorded as throttled), then sent when the window ends.
    await recordEvent(store.db, SYSTEM, { action: 'regulation.ban', target: 'client:192.0.2.99', details: { until: Date.now() + 60_000, strikes: 2 } });
    await waitFor('the throttled record', async () => (await listDeliveries(store.db, { outcome: 'throttled' })).length === 2);
    assert.equal(inbox.length, 1, 'nothing sent during the throttle window');
    await waitFor('the held ban after the window', async () => inbox.length === 2, 10_000);
    assert.match(inbox[1]!.subject, /^\[Argos\] Login ban: 192\.0\.2\.99/);
    const sent = await listDeliveries(store.db, { outcome: 'sent', channel: 'smtp' });
    assert.deepEqual(sent.map((r) => r.events), [1, 1000]);
  });

  test('when the SMTP server is down, nothing waits: enqueue returns at once, delivery is retried, then recorded as failed', async () => {
    const closed = await freePort();
    await set('smtp.port', String(closed));
    try {
      notifier = newNotifier({ attempts: 3, backoffMs: 150 });
      await notifier.start();
      // The write path (an audited event) and the notifier's intake do not wait for the relay.
      const t0 = performance.now();
      await recordEvent(store.db, SYSTEM, { action: 'user.2fa.reset', target: 'bob', details: { had_totp: true } });
      const auditMs = performance.now() - t0;
      assert.ok(auditMs < 1000, `the audited write took ${auditMs.toFixed(1)} ms`);
      assert.equal((await listDeliveries(store.db, { channel: 'smtp', outcome: 'failed' })).length, 0, 'the write returned before the delivery even failed');
      await waitFor('the failure record', async () => (await listDeliveries(store.db, { channel: 'smtp', outcome: 'failed' })).some((r) => r.event === '2fa_reset'), 20_000);
      const failed = (await listDeliveries(store.db, { channel: 'smtp', outcome: 'failed' })).find((r) => r.event === '2fa_reset')!;
      assert.equal(failed.attempts, 3, 'retried before giving up');
      assert.match(failed.error ?? '', /ECONNREFUSED/);
      assert.ok(!(failed.error ?? '').includes(SMTP_PASSWORD));
      // The webhook was not affected by the dead relay.
      await waitFor('the webhook', async () => hooks.some((h) => h.body.event === '2fa_reset'));
      // While the relay is down and deliveries are retrying, handing over a message still returns at once.
      const t1 = performance.now();
      for (let i = 0; i < 20; i++) notifier.enqueue('smtp', { event: 'test', time: new Date().toISOString(), summary: `probe ${i}`, text: 'x', details: {}, events: 0 });
      const enqueueMs = performance.now() - t1;
      assert.ok(enqueueMs < 20, `20 enqueues took ${enqueueMs.toFixed(2)} ms`);
    } finally {
      await set('smtp.port', String(smtpPort));
    }
  });

  test('a full queue drops and counts instead of blocking', async () => {
    notifier = newNotifier({ queueMax: 3, dropFlushMs: 100 });
    const msg = (i: number) => ({ event: 'test', time: new Date().toISOString(), summary: `m${i}`, text: 'x', details: {}, events: 0 });
    const results = Array.from({ length: 8 }, (_, i) => notifier.enqueue('webhook', msg(i)));
    assert.deepEqual(results, [true, true, true, false, false, false, false, false]);
    assert.equal(notifier.dropped, 5);
    await waitFor('the deliveries', async () => (await listDeliveries(store.db, { channel: 'webhook', outcome: 'sent' })).length === 3);
    await waitFor('the drop record', async () => (await listDeliveries(store.db, { channel: 'webhook', outcome: 'dropped' })).length === 1);
    const dropped = (await listDeliveries(store.db, { channel: 'webhook', outcome: 'dropped' }))[0]!;
    assert.equal(dropped.events, 5, 'one history row counts every drop of the interval');
    assert.match(dropped.subject, /^5 notification\(s\) dropped, the queue was full \(last: m7\)$/);
  });

  test('after a restore (the audit log replaced, ids going back), the restore itself is reported and later entries too', async () => {
    notifier = newNotifier();
    await notifier.start();
    await recordEvent(store.db, SYSTEM, { action: 'user.create', target: 'x' });
    await sleep(200);
    // What Database.restoreFrom + the restore command do: older content (fewer entries), then the audited restore and the epoch bump.
    const keep = (await store.db.get<{ id: number }>('SELECT max(id) - 3 AS id FROM audit_log'))!.id;
    await store.db.write(async (tx) => {
      await tx.run('DELETE FROM audit_log WHERE id > ?', [keep]);
      await tx.run("INSERT INTO audit_log (ts, actor, action, target, ip, details, prev_hash, hash) VALUES (?, 'cli', 'backup.restore', 'argos-backup-1.tar.gz', NULL, '{}', '', '')", [Date.now()]);
      await tx.run("UPDATE changes SET counter = counter + 1 WHERE topic = 'restore'");
    });
    await waitFor('the restore mail', async () => inbox.some((m) => m.subject === '[Argos] A backup was restored by cli: argos-backup-1.tar.gz'));
    await recordEvent(store.db, SYSTEM, { action: 'system.master_key.rotate', target: 'vault' });
    await waitFor('the next event after the restore', async () => inbox.some((m) => m.subject === '[Argos] The master key was rotated by system'));
  });

  test("a user's first sign-in from a new country is reported; the very first sign-in and known countries are not", async () => {
    const countries: Record<string, string> = { '198.51.100.1': 'DE', '198.51.100.2': 'DE', '203.0.113.50': 'FR' };
    notifier = newNotifier({}, (ip) => countries[ip] ?? null);
    await notifier.start();
    const login = (ip: string) => recordEvent(store.db, { name: 'user:carol', ip }, { action: 'portal.login.success', target: 'carol', details: { session: 1, method: 'password' } });
    await login('198.51.100.1');
    await login('198.51.100.2');
    await sleep(700);
    assert.equal(inbox.filter((m) => /new country|first time/.test(m.subject)).length, 0);
    await login('203.0.113.50');
    await waitFor('the new-country mail', async () => inbox.some((m) => m.subject.includes('carol signed in from FR for the first time')));
    assert.match(inbox.find((m) => m.subject.includes('carol'))!.subject, /from 203\.0\.113\.50 \(before: DE\)/);
    const rows = await store.db.all<{ country: string }>("SELECT country FROM login_countries WHERE username = 'carol' ORDER BY country");
    assert.deepEqual(rows.map((r) => r.country), ['DE', 'FR']);
  });
});
