/**
 * Password hashing (password.ts, password-worker.mjs): argon2id PHC strings compatible with the hashes
 * stored by the earlier implementation (the `argon2` package), the constant-work dummy path for unknown
 * users, the bounded queue, the low-priority hashing thread, and failing closed when that thread dies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { HashQueueFull, Semaphore, hashPassword, hashingQueue, hashingThreadInfo, passwordProblem, verifyPassword } from './password.ts';

const PHC = /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/;

/**
 * Made once by the `argon2` npm package 0.45.1 (this module's implementation before the hashing thread) with
 * { type: argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 }: hashes stored by it must keep verifying.
 * Note its parameter order (m,p,t) differs from the new hashes' (m,t,p); both are valid PHC strings. (While that
 * package was still installed, this file also checked live that each implementation verifies the other's hashes,
 * including a 400-character non-ASCII password; it passed before the package was removed.)
 */
const OLD_HASHES = [
  { password: 'known-good password for the argon2 fixture', hash: '$argon2id$v=19$m=19456,p=1,t=2$ZHRIBd0d6U2ckhEs5LoRoQ$MK0BmGhVePg1sI8H0aSr3Jsp4/7r46D0YsLLB/ZwWH0' },
  { password: 'ünïcödé pässwörd ✓ with spaces', hash: '$argon2id$v=19$m=19456,p=1,t=2$FbjB08LuAdbrpzF20BJbog$HHAwURXhaiuah4QRAn9hBtTa7HvzH+eOIUKNMVWpY4s' },
];

/** Field 19 (nice) and fields 14+15 (utime+stime, clock ticks) of /proc/self/task/<tid>/stat. */
function threadStat(tid: number): { nice: number; cpuTicks: number } {
  const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
  return { nice: Number(fields[19 - 3]), cpuTicks: Number(fields[14 - 3]) + Number(fields[15 - 3]) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

test('when a password is hashed, then it is an argon2id PHC string at the fixed parameters that verifies, and a wrong password does not', async () => {
  const hash = await hashPassword('correct horse battery staple');
  assert.match(hash, PHC);
  assert.notEqual(await hashPassword('correct horse battery staple'), hash, 'a fresh salt every time');
  assert.equal(await verifyPassword(hash, 'correct horse battery staple'), true);
  assert.equal(await verifyPassword(hash, 'correct horse battery stapl'), false);
  assert.equal(await verifyPassword(hash, ''), false);
});

test('when a stored hash was made by the argon2 package, then it still verifies (and only with its password)', async () => {
  for (const { password, hash } of OLD_HASHES) {
    assert.equal(await verifyPassword(hash, password), true, hash);
    assert.equal(await verifyPassword(hash, `${password}x`), false, hash);
  }
});

test('when a stored hash is malformed, then verification answers false', async () => {
  assert.equal(await verifyPassword('not a hash', 'whatever-password'), false);
  assert.equal(await verifyPassword('', 'whatever-password'), false);
  assert.equal(await verifyPassword(OLD_HASHES[0]!.hash.slice(0, -4), OLD_HASHES[0]!.password), false);
});

test('when the user is unknown (stored null), then verification is false and costs the same as a wrong password', async (t) => {
  const hash = await hashPassword('the real users password');
  assert.equal(await verifyPassword(null, 'argos-dummy-password-for-timing-parity'), false, 'not even the dummy password');
  assert.equal(await verifyPassword(null, 'the real users password'), false);
  // Paired rounds, shuffled order (see auth.test.ts for the full statistical version through the login path).
  const ratios: number[] = [];
  const unknown: number[] = [];
  const wrong: number[] = [];
  for (let round = 0; round < 8; round++) {
    const times: Record<string, number> = {};
    for (const k of Math.random() < 0.5 ? ['unknown', 'wrong'] : ['wrong', 'unknown']) {
      const t0 = performance.now();
      assert.equal(await verifyPassword(k === 'unknown' ? null : hash, `guess ${round}`), false);
      times[k] = performance.now() - t0;
    }
    unknown.push(times.unknown!);
    wrong.push(times.wrong!);
    ratios.push(times.unknown! / times.wrong!);
  }
  const ratio = median(ratios);
  t.diagnostic(`median unknown ${median(unknown).toFixed(1)} ms, wrong ${median(wrong).toFixed(1)} ms, paired ratio ${ratio.toFixed(2)}`);
  assert.ok(median(unknown) > 5, 'the unknown-user path pays a real argon2id verification');
  assert.ok(ratio > 1 / 1.5 && ratio < 1.5, `paired median ratio ${ratio.toFixed(2)}`);
});

test('when the waiting line is full, then hashing and verifying are refused with HashQueueFull', async () => {
  assert.equal(hashingQueue.limit, 1);
  assert.equal(hashingQueue.maxWaiting, 256);
  // Hold the one slot and fill the line with no-ops: no hashing needed to fill the queue.
  let release!: () => void;
  const holder = hashingQueue.run(() => new Promise<void>((r) => (release = r)));
  const waiters = Array.from({ length: 256 }, () => hashingQueue.run(async () => 'waited'));
  assert.equal(hashingQueue.queued, 256);
  await assert.rejects(hashPassword('some long password'), HashQueueFull);
  await assert.rejects(verifyPassword(null, 'some long password'), HashQueueFull);
  await assert.rejects(verifyPassword(OLD_HASHES[0]!.hash, OLD_HASHES[0]!.password), HashQueueFull);
  release();
  await holder;
  assert.deepEqual(new Set(await Promise.all(waiters)), new Set(['waited']));
  assert.equal(hashingQueue.queued, 0);
  assert.equal(await verifyPassword(OLD_HASHES[0]!.hash, OLD_HASHES[0]!.password), true, 'usable again');
});

test('a Semaphore runs at most `limit` at once and refuses beyond `maxWaiting` waiters', async () => {
  const s = new Semaphore(1, 2);
  let running = 0;
  let most = 0;
  const job = () =>
    s.run(async () => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
    });
  const jobs = [job(), job(), job()];
  await assert.rejects(job(), HashQueueFull);
  await Promise.all(jobs);
  assert.equal(most, 1);
});

test('on Linux, the hashing thread runs at nice 19 and the hashing CPU time is spent on it', { skip: process.platform !== 'linux' }, async (t) => {
  await hashPassword('start the hashing thread');
  const info = hashingThreadInfo();
  assert.ok(info?.tid, 'the thread reported its id');
  assert.equal(info.nice, 19);
  const before = threadStat(info.tid);
  const mainBefore = threadStat(process.pid);
  for (let i = 0; i < 3; i++) await hashPassword(`burn some cpu ${i}`);
  const afterStat = threadStat(info.tid);
  t.diagnostic(`hashing thread ${info.tid}: nice ${afterStat.nice}, +${afterStat.cpuTicks - before.cpuTicks} ticks for 3 hashes; main thread nice ${mainBefore.nice}`);
  assert.equal(afterStat.nice, 19, '/proc/self/task/<tid>/stat field 19');
  assert.ok(afterStat.cpuTicks > before.cpuTicks, 'the hashes ran on that thread');
  assert.ok(threadStat(process.pid).nice < 19 || mainBefore.nice === 19, 'only the hashing thread was reniced');
});

test('when the hashing thread dies, then a pending verification fails (never true) and the next call works on a new thread', async () => {
  const hash = await hashPassword('the password under test');
  const first = hashingThreadInfo();
  assert.ok(first);
  // A message the thread does not understand makes it throw and die; the verification queued behind it is pending.
  first.worker.postMessage({ op: 'crash, please' });
  const pending = verifyPassword(hash, 'the password under test');
  await assert.rejects(pending, /password hashing thread stopped/);
  assert.equal(await verifyPassword(hash, 'the password under test'), true, 'a new thread answers');
  const second = hashingThreadInfo();
  assert.ok(second && second.worker !== first.worker);
  // Terminated from outside while idle: started again on the next call.
  await second.worker.terminate();
  assert.equal(await verifyPassword(hash, 'wrong password here'), false);
  assert.equal(await verifyPassword(hash, 'the password under test'), true);
  assert.notEqual(hashingThreadInfo()?.worker, second.worker);
});

test('when a short-lived process hashes, then it gets its answer and exits promptly (the idle thread keeps nothing alive)', () => {
  const passwordTs = fileURLToPath(new URL('./password.ts', import.meta.url));
  const script = `const m = await import(${JSON.stringify(passwordTs)}); const h = await m.hashPassword('cli password 123'); console.log(await m.verifyPassword(h, 'cli password 123'));`;
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  const ms = performance.now() - t0;
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'true');
  assert.ok(ms < 15_000, `exited after ${ms.toFixed(0)} ms`);
});

test('passwordProblem: length policy only', () => {
  assert.match(passwordProblem('short')!, /at least 10/);
  assert.equal(passwordProblem('long enough'), null);
  assert.match(passwordProblem('x'.repeat(513))!, /at most 512/);
});
