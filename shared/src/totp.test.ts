/**
 * TOTP and recovery codes against a real migrated database: ±1 step accepted, ±2 refused, a used step (or an
 * older one) never accepted again, and a recovery code usable exactly once even when two requests race for it,
 * from one process's writer queue or from two processes' connections.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as OTPAuth from 'otpauth';
import { openStore, databasePath, type Store } from './store.ts';
import { Database } from './db/sqlite.ts';
import { CLI_ACTOR } from './audit.ts';
import { addUser } from './commands/users.ts';
import { provisionTotp, regenerateRecoveryCodes } from './commands/identity.ts';
import { consumeRecoveryCode, consumeTotp, remainingRecoveryCodes, TOTP_PERIOD } from './totp.ts';

const KEY = Buffer.alloc(32, 7);
/** A fixed instant in the middle of a 30 s step, so ±1 step never straddles a boundary by accident. */
const NOW = Math.floor(1_800_000_000_000 / 30_000) * 30_000 + 15_000;
const STEP_MS = TOTP_PERIOD * 1000;

/** What the user's authenticator app would show at `ms` (computed independently of Argos's code). */
const codeAt = (secret: string, ms: number) =>
  new OTPAuth.TOTP({ algorithm: 'SHA1', digits: 6, period: 30, secret: OTPAuth.Secret.fromBase32(secret) }).generate({ timestamp: ms });

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function freshStore(): Promise<{ store: Store; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-totp-'));
  dirs.push(dir);
  return { store: await openStore({ dataDir: dir, masterKey: KEY }, 'migrator'), dir };
}

let n = 0;
async function totpUser(store: Store): Promise<{ id: number; secret: string; username: string }> {
  const username = `user${++n}`;
  const u = await addUser(store.db, CLI_ACTOR, { username, password: 'correct-horse-battery' });
  const { secret } = await provisionTotp(store.db, store.vault, CLI_ACTOR, username);
  return { id: u.id, secret, username };
}

test('when the code of the current step is entered twice, then the second use is refused (replay)', async () => {
  const { store } = await freshStore();
  const u = await totpUser(store);
  const code = codeAt(u.secret, NOW);
  assert.equal(await consumeTotp(store.db, store.vault, u.id, code, NOW), true);
  assert.equal(await consumeTotp(store.db, store.vault, u.id, code, NOW), false, 'a shoulder-surfed or phished code cannot be replayed');
  assert.equal(await consumeTotp(store.db, store.vault, u.id, code, NOW + 5_000), false, 'not even later in the same window');
  // An older code still inside the ±1 window is refused too: steps only move forward.
  assert.equal(await consumeTotp(store.db, store.vault, u.id, codeAt(u.secret, NOW - STEP_MS), NOW), false);
  // The next step's code is fine.
  assert.equal(await consumeTotp(store.db, store.vault, u.id, codeAt(u.secret, NOW + STEP_MS), NOW + STEP_MS), true);
  await store.db.close();
});

test('when the clock of the phone is off by one step, then the code is accepted; by two steps, it is refused', async () => {
  const { store } = await freshStore();
  // ±2 first (each on a fresh user, so replay protection cannot be what refuses them).
  for (const offset of [-2, 2, -3, 3]) {
    const u = await totpUser(store);
    assert.equal(await consumeTotp(store.db, store.vault, u.id, codeAt(u.secret, NOW + offset * STEP_MS), NOW), false, `offset ${offset} steps`);
  }
  for (const offset of [-1, 0, 1]) {
    const u = await totpUser(store);
    assert.equal(await consumeTotp(store.db, store.vault, u.id, codeAt(u.secret, NOW + offset * STEP_MS), NOW), true, `offset ${offset} steps`);
  }
  await store.db.close();
});

test('a brute-forced code is refused: wrong digits, wrong length, letters and another user’s code', async () => {
  const { store } = await freshStore();
  const u = await totpUser(store);
  const other = await totpUser(store);
  const good = codeAt(u.secret, NOW);
  const wrong = String((Number(good) + 1) % 1_000_000).padStart(6, '0');
  for (const c of [wrong, good.slice(0, 5), `${good}0`, 'abcdef', '', ' '.repeat(6), codeAt(other.secret, NOW)]) {
    if (c === good) continue;
    assert.equal(await consumeTotp(store.db, store.vault, u.id, c, NOW), false, JSON.stringify(c));
  }
  assert.equal(await consumeTotp(store.db, store.vault, u.id, good, NOW), true, 'failed guesses do not burn the real code');
  await store.db.close();
});

test('when two requests use the same TOTP code at once, then exactly one succeeds', async () => {
  const { store } = await freshStore();
  const u = await totpUser(store);
  const code = codeAt(u.secret, NOW);
  const results = await Promise.all([consumeTotp(store.db, store.vault, u.id, code, NOW), consumeTotp(store.db, store.vault, u.id, code, NOW)]);
  assert.deepEqual(results.filter(Boolean).length, 1, JSON.stringify(results));
  await store.db.close();
});

test('when two requests use one recovery code at the same time, then exactly one succeeds', async () => {
  const { store } = await freshStore();
  const u = await totpUser(store);
  const codes = await regenerateRecoveryCodes(store.db, CLI_ACTOR, u.username);
  assert.equal(codes.length, 10);
  const results = await Promise.all([consumeRecoveryCode(store.db, u.id, codes[0]!, NOW), consumeRecoveryCode(store.db, u.id, codes[0]!, NOW)]);
  assert.equal(results.filter(Boolean).length, 1, JSON.stringify(results));
  assert.equal(await consumeRecoveryCode(store.db, u.id, codes[0]!, NOW), false, 'used is used');
  assert.equal(await remainingRecoveryCodes(store.db, u.id), 9);
  // Spelling does not matter (upper case, spaces), but the code does; another user's code is worthless.
  assert.equal(await consumeRecoveryCode(store.db, u.id, ` ${codes[1]!.toUpperCase().replace(/-/g, ' ')} `, NOW), true);
  const other = await totpUser(store);
  const otherCodes = await regenerateRecoveryCodes(store.db, CLI_ACTOR, other.username);
  assert.equal(await consumeRecoveryCode(store.db, u.id, otherCodes[0]!, NOW), false);
  await store.db.close();
});

test('when two processes (two database connections) race for one recovery code, then exactly one succeeds', async () => {
  const { store, dir } = await freshStore();
  const u = await totpUser(store);
  const codes = await regenerateRecoveryCodes(store.db, CLI_ACTOR, u.username);
  const second = await Database.open(databasePath(dir));
  try {
    for (const code of codes.slice(0, 5)) {
      const results = await Promise.all([consumeRecoveryCode(store.db, u.id, code, NOW), consumeRecoveryCode(second, u.id, code, NOW)]);
      assert.equal(results.filter(Boolean).length, 1, `${code}: ${JSON.stringify(results)}`);
    }
    assert.equal(await remainingRecoveryCodes(store.db, u.id), 5);
  } finally {
    await second.close();
    await store.db.close();
  }
});

test('regenerating recovery codes makes the old set worthless', async () => {
  const { store } = await freshStore();
  const u = await totpUser(store);
  const old = await regenerateRecoveryCodes(store.db, CLI_ACTOR, u.username);
  const fresh = await regenerateRecoveryCodes(store.db, CLI_ACTOR, u.username);
  assert.equal(await consumeRecoveryCode(store.db, u.id, old[0]!, NOW), false);
  assert.equal(await consumeRecoveryCode(store.db, u.id, fresh[0]!, NOW), true);
  await store.db.close();
});
