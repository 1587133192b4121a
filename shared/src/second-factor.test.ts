import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as OTPAuth from 'otpauth';
import { openStore } from './store.ts';
import { CLI_ACTOR } from './audit.ts';
import { addUser } from './commands/users.ts';
import { provisionTotp } from './commands/identity.ts';
import { Regulator } from './regulation.ts';
import { checkSecondFactor, MAX_CODE_TRIES } from './second-factor.ts';
import { authenticatePassword } from './auth.ts';
import { silentLogger } from './log.ts';

const limits = () => ({ maxFailures: 5, windowS: 300, banTimeS: 900 });

test('when an attacker with the password fires 200 codes at once on one challenge, then at most 5 are checked and the right one among them does not get in', async () => {
  const { db, vault } = await openStore({ dataDir: fs.mkdtempSync(path.join(os.tmpdir(), 'argos-2fa-')), masterKey: Buffer.alloc(32, 4) }, 'migrator');
  const user = await addUser(db, CLI_ACTOR, { username: 'victim', password: 'victim-password-1' });
  const { secret } = await provisionTotp(db, vault, CLI_ACTOR, 'victim');
  const right = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30, algorithm: 'SHA1' }).generate();
  const regulator = new Regulator({ limits });
  const challenge = { tries: 0 };
  const codes = Array.from({ length: 200 }, (_, i) => (i === 181 ? right : String(100000 + i).slice(0, 6)));
  const results = await Promise.all(codes.map((code) => checkSecondFactor({ db, vault, regulator }, { userId: user.id, username: 'victim', ip: '203.0.113.50', code, now: Date.now(), challenge })));
  const checked = results.filter((r) => r.kind !== 'blocked').length;
  assert.ok(checked <= MAX_CODE_TRIES, `${checked} codes were evaluated`);
  assert.ok(!results.some((r) => r.kind === 'ok'), 'the burst never gets a session');
  assert.ok(challenge.tries <= MAX_CODE_TRIES);
  await db.close();
});

test('when guesses come from many addresses, then the user-wide second-factor limit stops them', async () => {
  const { db, vault } = await openStore({ dataDir: fs.mkdtempSync(path.join(os.tmpdir(), 'argos-2fa-')), masterKey: Buffer.alloc(32, 4) }, 'migrator');
  const user = await addUser(db, CLI_ACTOR, { username: 'target', password: 'target-password-1' });
  await provisionTotp(db, vault, CLI_ACTOR, 'target');
  const regulator = new Regulator({ limits });
  let blocked = 0;
  for (let i = 0; i < 40; i++) {
    const r = await checkSecondFactor({ db, vault, regulator }, { userId: user.id, username: 'target', ip: `198.51.100.${i}`, code: '000000', now: Date.now() });
    if (r.kind === 'blocked') blocked++;
  }
  assert.ok(blocked >= 40 - 4 * 5, `blocked ${blocked} of 40 after the user-wide limit`);
  await db.close();
});

test('when one client fires 30 password guesses at once, then they are checked one at a time and counted: no more than the limit is hashed', async () => {
  const { db } = await openStore({ dataDir: fs.mkdtempSync(path.join(os.tmpdir(), 'argos-pw-')), masterKey: Buffer.alloc(32, 4) }, 'migrator');
  await addUser(db, CLI_ACTOR, { username: 'alice', password: 'alice-password-1' });
  const regulator = new Regulator({ limits });
  const attempts = Array.from({ length: 30 }, (_, i) => (i === 29 ? 'alice-password-1' : `guess-${i}-password`));
  const results = await Promise.all(attempts.map((password) => authenticatePassword({ db, regulator, log: silentLogger, realm: 'portal' }, { username: 'alice', password, ip: '203.0.113.77', userAgent: null })));
  const hashed = results.filter((r) => r.kind !== 'blocked').length;
  assert.ok(hashed <= 5, `${hashed} guesses were checked`);
  assert.ok(!results.some((r) => r.kind === 'ok'), 'the right password inside the burst does not get in');
  await db.close();
});
