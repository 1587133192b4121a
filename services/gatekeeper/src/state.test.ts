/**
 * Session lifetimes through the gatekeeper's own state and decision, with an injected clock: sessions are issued
 * by the real SessionIssuer into a real migrated database, and every request is parsed and decided exactly as
 * /verify does (parseVerify → decide over state.lookups()).
 *
 * Attacks stopped: a stolen cookie that keeps working long after its owner walked away (idle timeout), and one that
 * an attacker keeps "fresh" by using it forever (absolute lifetime).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '@argos/shared/config';
import { openStore, type Store } from '@argos/shared/store';
import { CLI_ACTOR, mutate } from '@argos/shared/audit';
import { addUser } from '@argos/shared/commands/users';
import { addHost } from '@argos/shared/commands/hosts';
import { changeSetting } from '@argos/shared/commands/settings';
import { getSessionByToken, revokeSession } from '@argos/shared/repos/sessions';
import { Regulator } from '@argos/shared/regulation';
import { silentLogger } from '@argos/shared/log';
import { GatekeeperState } from './state.ts';
import { SessionIssuer } from './identity/sessions.ts';
import { parseVerify } from './verify/parse.ts';
import { decide } from './verify/decide.ts';
import { respond } from './verify/respond.ts';
import type { Decision } from './verify/verdict.ts';
import type { Target } from './verify/target.ts';

const MIN = 60_000;
const T0 = 1_800_000_000_000;
const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

interface World {
  store: Store;
  config: Config;
  clock: { now: number };
  regulator: Regulator;
  state: GatekeeperState;
  issuer: SessionIssuer;
  /** What /verify would decide for a browser GET of app.example.com with this session cookie, at the clock's time. */
  decide(token: string, state?: GatekeeperState): Promise<{ decision: Decision; target: Target }>;
  /** The verdict kind of `decide`. */
  verify(token: string, state?: GatekeeperState): Promise<string>;
  close(): Promise<void>;
}

async function world(settings: Record<string, string>): Promise<World> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-state-'));
  dirs.push(dir);
  const config = loadConfig({ ARGOS_MASTER_KEY: randomBytes(32).toString('hex'), ARGOS_DATA_DIR: dir, ARGOS_PORTAL_URL: 'https://auth.example.com' }, dir);
  const store = await openStore(config, 'migrator');
  await addUser(store.db, CLI_ACTOR, { username: 'alice', password: 'correct-horse-battery' });
  await addHost(store.db, CLI_ACTOR, { domain: 'app.example.com', upstreams: ['http://10.0.0.5:8080'], policy: 'one_factor' });
  for (const [k, v] of Object.entries(settings)) await changeSetting(store.db, CLI_ACTOR, k, v);
  const clock = { now: T0 };
  const regulator = new Regulator({ limits: () => ({ maxFailures: 5, windowS: 300, banTimeS: 900 }), now: () => clock.now });
  const state = new GatekeeperState({ db: store.db, config, log: silentLogger, regulator, now: () => clock.now });
  await state.poll();
  const issuer = new SessionIssuer({ db: store.db, state, log: silentLogger });
  const w: World = {
    store,
    config,
    clock,
    regulator,
    state,
    issuer,
    async decide(token, state = w.state) {
      const headers = {
        'x-forwarded-method': 'GET',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'app.example.com',
        'x-forwarded-uri': '/',
        'x-forwarded-for': '203.0.113.9',
        accept: 'text/html',
        cookie: `argos_session=${token}`,
      };
      const parsed = parseVerify('127.0.0.1', headers, config.trustedProxies, 'test');
      assert.ok(parsed.ok, 'the request parses');
      return { decision: await decide(parsed.target, state.lookups()), target: parsed.target };
    },
    async verify(token, state = w.state) {
      return (await w.decide(token, state)).decision.verdict.kind;
    },
    close: () => store.db.close(),
  };
  return w;
}

const login = (w: World, remember = false) =>
  w.issuer.issue(
    { userId: w.state.usernames.get('alice')!, factors: 1, authMethod: 'password', remember, ip: '203.0.113.9', userAgent: 'test' },
    'portal.login.success',
  );
/** Waits until every write queued so far (e.g. a last-seen touch) is committed. */
const drain = (w: World) => w.store.db.write(async () => undefined);

test('when a session is left unused longer than the idle timeout, then it stops passing; while it is used, it does not', async () => {
  const w = await world({ 'session.idle_timeout': '30m', 'session.lifetime': '7d' });
  const { token } = await login(w);
  assert.equal(await w.verify(token), 'allow');

  w.clock.now = T0 + 29 * MIN;
  assert.equal(await w.verify(token), 'allow', 'used within the idle timeout');
  await drain(w);
  assert.equal((await getSessionByToken(w.store.db, token))?.lastSeenAt, T0 + 29 * MIN, 'last seen persisted through the writer queue');

  w.clock.now = T0 + 29 * MIN + 30_000;
  assert.equal(await w.verify(token), 'allow');
  await drain(w);
  assert.equal((await getSessionByToken(w.store.db, token))?.lastSeenAt, T0 + 29 * MIN, 'last-seen writes are throttled (not one per request)');

  // 58 minutes after login, but only 29 after the last use: still alive, also for a process that reads it fresh.
  w.clock.now = T0 + 58 * MIN;
  assert.equal(await w.verify(token), 'allow');
  await drain(w);
  const restarted = new GatekeeperState({
    db: w.store.db,
    config: w.config,
    log: silentLogger,
    regulator: new Regulator({ limits: () => ({ maxFailures: 5, windowS: 300, banTimeS: 900 }) }),
    now: () => w.clock.now,
  });
  await restarted.poll();
  assert.equal(await w.verify(token, restarted), 'allow', 'a restarted gatekeeper (empty cache) sees the persisted last-seen');

  // Now walk away: 30 minutes and one second without a request.
  w.clock.now = T0 + 88 * MIN + 1000;
  assert.equal(await w.verify(token), 'login', 'idle timeout reached: the cookie is worthless');
  w.clock.now += 1000;
  assert.equal(await w.verify(token), 'login', 'and a late request does not revive it');
  await w.close();
});

test('when a session is used all the time, then it still ends at its absolute lifetime; "remember me" has its own', async () => {
  const w = await world({ 'session.idle_timeout': '30m', 'session.lifetime': '2h', 'session.remember_lifetime': '6h' });
  const normal = await login(w);
  const remembered = await login(w, true);
  for (let t = 20; t < 120; t += 20) {
    w.clock.now = T0 + t * MIN;
    assert.equal(await w.verify(normal.token), 'allow', `${t} min`);
    assert.equal(await w.verify(remembered.token), 'allow', `${t} min (remember me)`);
  }
  w.clock.now = T0 + 120 * MIN - 1000;
  assert.equal(await w.verify(normal.token), 'allow', 'one second before the end');
  w.clock.now = T0 + 120 * MIN + 1000;
  assert.equal(await w.verify(normal.token), 'login', 'absolute lifetime reached although the session was never idle');
  assert.equal(await w.verify(remembered.token), 'allow', 'remember me lives longer');
  for (let t = 140; t < 360; t += 20) {
    w.clock.now = T0 + t * MIN;
    assert.equal(await w.verify(remembered.token), 'allow', `${t} min (remember me)`);
  }
  w.clock.now = T0 + 360 * MIN + 1000;
  assert.equal(await w.verify(remembered.token), 'login', 'remember-me lifetime reached');
  await w.close();
});

test('when a session is revoked in the database, then the next poll of the change signal makes the cached session stop passing', async () => {
  const w = await world({});
  const s = await login(w);
  assert.equal(await w.verify(s.token), 'allow', 'cached now');
  await mutate(w.store.db, CLI_ACTOR, async (tx) => {
    await revokeSession(tx, s.id, w.clock.now);
    return { result: undefined, audit: { action: 'test.revoke', target: 'alice' } };
  });
  await w.state.poll();
  assert.equal(await w.verify(s.token), 'login');
  await w.close();
});

test('when login regulation has banned a client, then /verify answers it 429 with Retry-After first, whatever session it holds, until the ban ends', async () => {
  const w = await world({ 'session.idle_timeout': '12h' });
  const s = await login(w);
  for (let i = 0; i < 5; i++) w.regulator.fail('203.0.113.9', 'alice');
  const { decision, target } = await w.decide(s.token);
  assert.deepEqual(decision.verdict, { kind: 'rate_limited', reason: 'regulation_ban', retryAfterS: 900 });
  assert.equal(decision.trace.length, 1, 'decided by the first check, before any credential is looked at');
  assert.equal(decision.trace[0]!.check, 'ban');
  const answer = respond(decision.verdict, target, w.config.portalUrl);
  assert.equal(answer.status, 429);
  assert.equal(answer.headers['Retry-After'], '900');
  w.clock.now += 600_000;
  const later = (await w.decide(s.token)).decision.verdict;
  assert.equal(later.kind === 'rate_limited' && later.retryAfterS, 300, 'Retry-After counts down');
  w.clock.now += 300_001;
  assert.equal(await w.verify(s.token), 'allow', 'the ban ends');
  await w.close();
});
