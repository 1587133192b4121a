/**
 * Password authentication: one vague answer whatever failed, and no timing oracle. An attacker who can time
 * the login form must not learn which usernames exist or are disabled: unknown user, disabled user and wrong
 * password all pay one argon2 verification (the dummy hash for unknown users, the real hash otherwise).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openStore, type Store } from './store.ts';
import { CLI_ACTOR } from './audit.ts';
import { addUser, editUser } from './commands/users.ts';
import { Regulator } from './regulation.ts';
import { silentLogger } from './log.ts';
import { authenticatePassword, type AuthDeps } from './auth.ts';

const KEY = Buffer.alloc(32, 3);
let dir: string;
let store: Store;
let deps: AuthDeps;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-auth-'));
  store = await openStore({ dataDir: dir, masterKey: KEY }, 'migrator');
  await addUser(store.db, CLI_ACTOR, { username: 'alice', password: 'correct-horse-battery' });
  await addUser(store.db, CLI_ACTOR, { username: 'dora', password: 'dora-has-a-password' });
  await editUser(store.db, CLI_ACTOR, 'dora', { disabled: true });
  // Limits high enough that neither a ban nor the per-user slowdown shapes the timings measured below.
  const regulator = new Regulator({ limits: () => ({ maxFailures: 100_000, windowS: 300, banTimeS: 900 }) });
  deps = { db: store.db, regulator, log: silentLogger, realm: 'portal' };
});

after(async () => {
  await store?.db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const attempt = (username: string, password: string, i = 0) =>
  authenticatePassword(deps, { username, password, ip: `198.51.100.${i % 250}`, userAgent: 'timing-test' });

test('when the username is unknown, the user disabled or the password wrong, then the answer is the same vague failure', async () => {
  const results = await Promise.all([
    // Three clients (one client's attempts are checked one at a time; see second-factor.test.ts).
    attempt('nobody-here', 'whatever-password', 0),
    attempt('dora', 'dora-has-a-password', 1),
    attempt('alice', 'not-her-password', 2),
  ]);
  assert.deepEqual(
    results.map((r) => r.kind),
    ['failed', 'failed', 'failed'],
  );
  assert.deepEqual(
    results.map((r) => (r.kind === 'failed' ? r.reason : '')),
    ['unknown_user', 'user_disabled', 'wrong_password'],
    'the real reason is kept for the audit log',
  );
  assert.equal((await attempt('alice', 'correct-horse-battery')).kind, 'ok');
});

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * The statistical timing test. Many rounds; in each, one attempt of every kind in a shuffled order, so background
 * load on a busy 2-core machine (other test files, other builds) hits all three kinds of the same round alike. The
 * comparison is paired: for each pair of kinds, the median over rounds of the per-round time ratio must lie within
 * 1/1.25 … 1.25. A paired median shrugs off load that comes and goes between rounds, which plain medians do not.
 *
 * How we know it can fail: with the dummy hash removed from verifyPassword (`if (stored === null) return false;`
 * as its first line, so unknown users return at once), this test fails: unknown user about 1 ms against 25-80 ms
 * for the others depending on load, paired ratio unknown/wrong about 0.02 (checked by hand when the test was
 * written, by making that edit and running this file; the floor and the ratio assertions both fail).
 * The floor assertion also catches a change that made every path skip hashing.
 */
test('when an attacker times the login, then unknown user, disabled user and wrong password take the same time within noise', async (t) => {
  const kinds = {
    unknown: (i: number) => attempt(`ghost${i}`, 'some-password-guess', i),
    disabled: (i: number) => attempt('dora', 'dora-has-a-password', i),
    wrong: (i: number) => attempt('alice', `guess-number-${i}`, i),
  } as const;
  type Kind = keyof typeof kinds;
  const names = Object.keys(kinds) as Kind[];
  const rounds: Record<Kind, number>[] = [];
  const ROUNDS = 40;
  const WARMUP = 3;
  for (let round = 0; round < ROUNDS + WARMUP; round++) {
    const order = [...names].sort(() => Math.random() - 0.5);
    const times = {} as Record<Kind, number>;
    for (const k of order) {
      const t0 = performance.now();
      const r = await kinds[k](round);
      times[k] = performance.now() - t0;
      assert.equal(r.kind, 'failed');
    }
    if (round >= WARMUP) rounds.push(times);
  }
  const med = Object.fromEntries(names.map((k) => [k, median(rounds.map((r) => r[k]))])) as Record<Kind, number>;
  const shown = names.map((k) => `${k} ${med[k].toFixed(1)} ms`).join(', ');
  const ratios: string[] = [];
  const problems: string[] = [];
  for (const k of names) if (!(med[k] > 5)) problems.push(`${k} does not pay a real password hash`);
  for (const a of names) {
    for (const b of names) {
      if (a >= b) continue;
      const ratio = median(rounds.map((r) => r[a] / r[b]));
      ratios.push(`${a}/${b} ${ratio.toFixed(2)}`);
      if (ratio > 1.25 || ratio < 1 / 1.25) problems.push(`${a} vs ${b}: paired median ratio ${ratio.toFixed(2)}`);
    }
  }
  t.diagnostic(`${ROUNDS} rounds; medians ${shown}; paired ratios ${ratios.join(', ')}`);
  assert.deepEqual(problems, [], `${shown}; ${ratios.join(', ')}`);
});
