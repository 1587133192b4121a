/**
 * The bouncer and the ban push against a real CrowdSec LAPI (Debian crowdsec 1.4, started by the test on a random
 * loopback port with its own config). If CrowdSec is missing the test fails and says how to install it: never a skip.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startLapi, type Lapi } from '../../../../tests/lib/crowdsec.ts';
import { CrowdsecPusher } from '@argos/shared/crowdsec-push';
import { Regulator } from '@argos/shared/regulation';
import { CrowdsecBouncer } from './crowdsec.ts';

const INTERVAL_MS = 300;

async function eventually(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await fn()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
}

describe('CrowdSec LAPI (real)', () => {
  let lapi: Lapi;
  let bouncer: CrowdsecBouncer;
  let key: string;
  const states: boolean[] = [];

  before(async () => {
    lapi = await startLapi();
    key = lapi.bouncerKey;
    bouncer = new CrowdsecBouncer({ url: () => lapi.url, key: () => key, intervalMs: () => INTERVAL_MS, onStateChange: (s) => states.push(s.stale) });
    bouncer.start();
    await eventually('first pull', () => bouncer.status().connected);
  });

  after(async () => {
    bouncer?.stop();
    await lapi?.close();
  });

  test('a decision added with cscli --ip and one with --range are enforced within the pull interval, then lifted after cscli decisions delete', async () => {
    assert.equal(bouncer.check('203.0.113.7'), null);
    lapi.cscli(['decisions', 'add', '--ip', '203.0.113.7', '--duration', '1h', '--reason', 'argos test ip']);
    lapi.cscli(['decisions', 'add', '--range', '198.51.100.0/24', '--duration', '30m', '--type', 'captcha']);
    const took = await eventually('IP and range enforced', () => bouncer.check('203.0.113.7') !== null && bouncer.check('198.51.100.42') !== null, INTERVAL_MS * 4 + 1000);
    console.log(`# decisions enforced ${took} ms after cscli returned (pull interval ${INTERVAL_MS} ms)`);
    const ip = bouncer.check('203.0.113.7')!;
    assert.equal(ip.scope, 'ip');
    assert.equal(ip.type, 'ban');
    assert.ok(ip.untilMs > Date.now() + 59 * 60_000 && ip.untilMs <= Date.now() + 3600_000, 'expires at the end of its own duration');
    assert.equal(bouncer.check('198.51.100.42')?.type, 'captcha', 'captcha counts as a ban by default');
    assert.equal(bouncer.check('198.51.101.1'), null, 'outside the range');
    assert.equal(bouncer.check('203.0.113.8'), null);

    lapi.cscli(['decisions', 'delete', '--ip', '203.0.113.7']);
    lapi.cscli(['decisions', 'delete', '--range', '198.51.100.0/24']);
    await eventually('both lifted', () => bouncer.check('203.0.113.7') === null && bouncer.check('198.51.100.42') === null, INTERVAL_MS * 4 + 1000);
  });

  test('IPv6: an address and a /48 range', async () => {
    lapi.cscli(['decisions', 'add', '--ip', '2001:db8::7', '--duration', '1h']);
    lapi.cscli(['decisions', 'add', '--range', '2001:db8:1::/48', '--duration', '1h']);
    await eventually('IPv6 enforced', () => bouncer.check('2001:db8::7') !== null && bouncer.check('2001:db8:1:ffff::99') !== null);
    assert.equal(bouncer.check('2001:0db8:0000::0007')?.scope, 'ip', 'any spelling of the address');
    assert.equal(bouncer.check('2001:db8:2::1'), null);
    lapi.cscli(['decisions', 'delete', '--ip', '2001:db8::7']);
    await eventually('IPv6 address lifted', () => bouncer.check('2001:db8::7') === null);
    assert.notEqual(bouncer.check('2001:db8:1::5'), null, 'the range stays');
    lapi.cscli(['decisions', 'delete', '--range', '2001:db8:1::/48']);
  });

  test('LAPI stopped mid-test: enforcement continues, the state is stale, each decision still ends at its own duration; recovery is reported', async () => {
    lapi.cscli(['decisions', 'add', '--ip', '192.0.2.10', '--duration', '1h']);
    lapi.cscli(['decisions', 'add', '--ip', '192.0.2.11', '--duration', '6s']);
    await eventually('enforced', () => bouncer.check('192.0.2.10') !== null && bouncer.check('192.0.2.11') !== null);
    const shortUntil = bouncer.check('192.0.2.11')!.untilMs;
    await lapi.stop();
    await eventually('stale reported', () => bouncer.status().stale, 5000);
    const st = bouncer.status();
    assert.equal(st.connected, false);
    assert.ok(st.lastError, 'the error is shown');
    assert.ok(st.decisions >= 2);
    assert.notEqual(bouncer.check('192.0.2.10'), null, 'still enforced while the LAPI is down');
    assert.ok(Date.now() < shortUntil - 500, 'the short decision is still running');
    assert.notEqual(bouncer.check('192.0.2.11'), null, 'the short decision too, until its end');
    await eventually('the 6 s decision ends locally', () => bouncer.check('192.0.2.11') === null, 8000);
    assert.ok(Date.now() >= shortUntil, 'not before its time');
    assert.notEqual(bouncer.check('192.0.2.10'), null);
    await lapi.start();
    await eventually('recovered', () => !bouncer.status().stale, 5000);
    assert.deepEqual(states.slice(-2), [true, false], 'stale and recovery were both reported');
    lapi.cscli(['decisions', 'delete', '--ip', '192.0.2.10']);
  });

  test('a wrong bouncer key (403) keeps the last known decisions and reports stale', async () => {
    lapi.cscli(['decisions', 'add', '--ip', '192.0.2.20', '--duration', '1h']);
    await eventually('enforced', () => bouncer.check('192.0.2.20') !== null);
    key = 'wrong-key-0000000000000000000000';
    await eventually('stale on 403', () => bouncer.status().stale && /HTTP 403/.test(bouncer.status().lastError ?? ''));
    assert.notEqual(bouncer.check('192.0.2.20'), null);
    key = lapi.bouncerKey;
    await eventually('recovered', () => !bouncer.status().stale);
    assert.notEqual(bouncer.check('192.0.2.20'), null, 'the resync with the right key still has it');
    lapi.cscli(['decisions', 'delete', '--ip', '192.0.2.20']);
  });

  test('attack: repeated failed logins from one IP end as a CrowdSec decision (pushed as an alert) that the bouncer enforces', async () => {
    const pusher = new CrowdsecPusher({ url: () => lapi.url, machineId: () => lapi.machineId, password: () => lapi.machinePassword, retryDelayMs: 100 });
    const regulator = new Regulator({ limits: () => ({ maxFailures: 5, windowS: 300, banTimeS: 900 }), onBan: (b) => pusher.push(b) });
    const attacker = '203.0.113.66';
    for (let i = 0; i < 5; i++) regulator.fail(attacker, `admin${i}`);
    assert.ok(regulator.blockedFor(attacker) > 0, 'Argos banned the client itself');
    await pusher.flush();
    assert.equal(pusher.status().sent, 1, JSON.stringify(pusher.status()));
    const d = lapi.decisions().find((x) => x.value === attacker);
    assert.ok(d, `cscli decisions list shows the ban: ${JSON.stringify(lapi.decisions())}`);
    assert.equal(d.origin, 'argos');
    assert.equal(d.scenario, 'argos/login-bruteforce');
    assert.equal(d.type, 'ban');
    assert.equal(d.scope, 'Ip');
    const listed = JSON.parse(lapi.cscli(['decisions', 'list', '--origin', 'argos', '-o', 'json'])) as unknown[];
    assert.ok(listed.length >= 1, '`cscli decisions list --origin argos` shows it too');
    await eventually('bouncer enforces the pushed ban', () => bouncer.check(attacker)?.scenario === 'argos/login-bruteforce');
    const until = bouncer.check(attacker)!.untilMs;
    assert.ok(until > Date.now() + 890_000 && until <= Date.now() + 900_000, 'for the ban time Argos decided');

    // IPv6: the client is the /64, pushed as a Range decision.
    for (let i = 0; i < 5; i++) regulator.fail(`2001:db8:66:1::${i + 1}`, 'root');
    await pusher.flush();
    await eventually('IPv6 /64 enforced', () => bouncer.check('2001:db8:66:1:abcd::1') !== null);
    assert.equal(lapi.decisions().find((x) => x.value === '2001:db8:66:1::/64')?.scope, 'Range');
  });

  test('push with a wrong machine password fails, is counted and logged, and never throws into the login path', async () => {
    const warnings: string[] = [];
    const pusher = new CrowdsecPusher({
      url: () => lapi.url,
      machineId: () => lapi.machineId,
      password: () => 'not-the-password',
      retries: 1,
      retryDelayMs: 10,
      log: { info: () => undefined, warn: (_o, m) => void warnings.push(m) },
    });
    assert.equal(pusher.push({ key: 'client:198.51.100.77', until: Date.now() + 60_000, strikes: 1, reason: 'test' }), true);
    assert.equal(pusher.push({ key: 'pair:alice|198.51.100.77', until: Date.now() + 60_000, strikes: 1, reason: 'test' }), false, 'user/client pair bans are not pushed');
    await pusher.flush();
    assert.equal(pusher.status().failed, 1);
    assert.match(pusher.status().lastError ?? '', /login as "argos-test-machine" failed: HTTP 401/);
    assert.ok(warnings.some((w) => /could not push/.test(w)));
    assert.equal(lapi.decisions().find((x) => x.value === '198.51.100.77'), undefined);
  });
});
