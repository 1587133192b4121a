/** Master-key rotation (round trip and interruption), the secret-column registry, and backups across a rotation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore, MasterKeyMismatch, KEY_CHECK } from './store.ts';
import { CLI_ACTOR, listAudit, verifyAuditChain } from './audit.ts';
import { storeSecret } from './commands/settings.ts';
import { addUser } from './commands/users.ts';
import { provisionTotp } from './commands/identity.ts';
import { readSecret } from './secrets.ts';
import { decryptTotpSecret } from './totp.ts';
import { getUser } from './repos/users.ts';
import { Vault } from './crypto.ts';
import { readSigningKey, rotateMasterKey, storedSecrets } from './keys.ts';
import { BackupRefused, createBackup, restoreBackup, verifyBackup } from './backup.ts';

const OLD = Buffer.alloc(32, 1);
const NEW = Buffer.alloc(32, 2);
const dir = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'argos-keys-')), 'data');

async function populated(dataDir: string) {
  const s = await openStore({ dataDir, masterKey: OLD }, 'migrator');
  await storeSecret(s.db, s.vault, CLI_ACTOR, 'smtp.password', 'smtp-pw-before-rotation');
  await storeSecret(s.db, s.vault, CLI_ACTOR, 'oidc.client_secret', 'oidc-secret-before-rotation');
  await addUser(s.db, CLI_ACTOR, { username: 'alice', password: 'alice-password-1' });
  const { secret } = await provisionTotp(s.db, s.vault, CLI_ACTOR, 'alice');
  return { s, seed: secret };
}

const rawValues = async (db: Parameters<typeof storedSecrets>[0]) => (await storedSecrets(db)).map((x) => `${x.loc.table}/${x.loc.row}=${x.value}`).sort();

test('rotation round trip: every secret re-encrypted under key version 2; the old key no longer opens the database; audited without key material', async () => {
  const dataDir = dir();
  const { s, seed } = await populated(dataDir);
  const backup = await createBackup({ db: s.db, vault: s.vault, masterKey: OLD, dataDir }, { kind: 'manual', actor: CLI_ACTOR });
  const signingKey = await readSigningKey(s.db, s.vault);
  const r = await rotateMasterKey(s.db, s.vault, NEW, CLI_ACTOR);
  assert.deepEqual(r, { secrets: 2, totpSeeds: 1, fromVersion: 1, toVersion: 2 });
  for (const v of await storedSecrets(s.db)) assert.match(v.value, /^k2\./, `${v.loc.table}/${v.loc.row} carries key version 2`);
  const [entry] = await listAudit(s.db, { action: 'system.master_key.rotate' });
  assert.ok(entry, 'rotation is audited');
  for (const k of [OLD, NEW]) assert.ok(!JSON.stringify(entry).includes(k.toString('hex')), 'no key material in the audit entry');
  assert.equal((await verifyAuditChain(s.db)).ok, true);
  await s.db.close();

  await assert.rejects(openStore({ dataDir, masterKey: OLD }, 'migrator'), MasterKeyMismatch);
  const n = await openStore({ dataDir, masterKey: NEW }, 'migrator');
  assert.equal(n.vault.keyVersion, 2);
  assert.equal(await readSecret(n.db, n.vault, 'smtp.password'), 'smtp-pw-before-rotation');
  assert.equal(await readSecret(n.db, n.vault, 'oidc.client_secret'), 'oidc-secret-before-rotation');
  const alice = (await getUser(n.db, 'alice'))!;
  assert.equal(decryptTotpSecret(n.vault, alice.id, alice.totpSecret!), seed);
  assert.deepEqual(await readSigningKey(n.db, n.vault), signingKey, 'the backup-signing key is re-encrypted, not changed');

  // The backup made before the rotation still verifies (same signing key); restoring it needs the old key for its secrets.
  const ctx = { db: n.db, vault: n.vault, masterKey: NEW, dataDir };
  assert.equal((await verifyBackup(ctx, backup.file)).signedBy, 'this installation');
  await assert.rejects(
    restoreBackup(ctx, backup.file, { actor: CLI_ACTOR }),
    (e: unknown) => e instanceof BackupRefused && /ARGOS_BACKUP_MASTER_KEY/.test(e.message),
  );
  await storeSecret(n.db, n.vault, CLI_ACTOR, 'smtp.password', 'smtp-pw-after-rotation');
  await restoreBackup(ctx, backup.file, { actor: CLI_ACTOR, backupMasterKey: OLD });
  assert.equal(await readSecret(n.db, n.vault, 'smtp.password'), 'smtp-pw-before-rotation', 'restored and re-encrypted under the current key');
  assert.equal((await n.db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'key_version'"))?.value, '2', 'the live key version stays');
  await n.db.close();
  const again = await openStore({ dataDir, masterKey: NEW }, 'migrator');
  assert.equal(await readSecret(again.db, again.vault, 'oidc.client_secret'), 'oidc-secret-before-rotation');
  await again.db.close();
});

test('an interrupted rotation (failure mid-way) rolls back: the database is unchanged and readable with the old key', async () => {
  const dataDir = dir();
  const { s } = await populated(dataDir);
  await createBackup({ db: s.db, vault: s.vault, masterKey: OLD, dataDir }, { kind: 'manual', actor: CLI_ACTOR });
  const before = await rawValues(s.db);
  const audits = (await s.db.all('SELECT id FROM audit_log')).length;
  await assert.rejects(
    rotateMasterKey(s.db, s.vault, NEW, CLI_ACTOR, {
      afterEach: (done) => {
        if (done === 2) throw new Error('simulated crash after two values');
      },
    }),
    /simulated crash/,
  );
  assert.deepEqual(await rawValues(s.db), before, 'every ciphertext is as before');
  assert.equal((await s.db.all('SELECT id FROM audit_log')).length, audits, 'no audit entry for a rotation that did not happen');
  await s.db.close();
  const reopened = await openStore({ dataDir, masterKey: OLD }, 'migrator');
  assert.equal(reopened.vault.keyVersion, 1);
  assert.equal(await readSecret(reopened.db, reopened.vault, 'smtp.password'), 'smtp-pw-before-rotation');
  await reopened.db.close();
});

test('rotating to the same key is refused', async () => {
  const { s } = await populated(dir());
  await assert.rejects(rotateMasterKey(s.db, s.vault, OLD, CLI_ACTOR), /same as the current one/);
  await s.db.close();
});

test('every Vault ciphertext in the database is in the secret-column registry (so rotation covers it) and uses AAD table/row/column', async () => {
  const dataDir = dir();
  const { s } = await populated(dataDir);
  await createBackup({ db: s.db, vault: s.vault, masterKey: OLD, dataDir }, { kind: 'manual', actor: CLI_ACTOR });
  const known = new Set((await storedSecrets(s.db)).map((x) => x.value));
  // Every text value of every column of every table (test code may build SQL; table names come from sqlite_master).
  const tables = await s.db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'");
  const found: string[] = [];
  for (const { name } of tables) {
    for (const c of await s.db.all<{ name: string }>('SELECT name FROM pragma_table_info(?)', [name])) {
      const rows = await s.db.all<{ v: string }>(`SELECT "${c.name}" AS v FROM "${name}" WHERE typeof("${c.name}") = 'text' AND "${c.name}" GLOB 'k[0-9]*.*'`);
      for (const r of rows) if (/^k\d+\.[A-Za-z0-9_-]{38,}$/.test(r.v)) found.push(`${name}.${c.name}:${r.v}`);
    }
  }
  assert.ok(found.length >= 5, `the scan sees the stored ciphertexts (${found.length})`);
  for (const f of found) assert.ok(known.has(f.slice(f.indexOf(':') + 1)), `ciphertext not in the secret-column registry: ${f.slice(0, 40)}…`);
  await s.db.close();
  // And each one authenticates only at its own location (AAD).
  const v = new Vault(OLD, 1);
  const s2 = await openStore({ dataDir, masterKey: OLD }, 'migrator');
  for (const x of await storedSecrets(s2.db)) {
    assert.doesNotThrow(() => v.decrypt(x.value, x.loc));
    assert.throws(() => v.decrypt(x.value, { ...x.loc, row: `${x.loc.row}x` }));
  }
  assert.ok((await storedSecrets(s2.db)).some((x) => x.loc.table === KEY_CHECK.table && x.loc.row === KEY_CHECK.row));
  await s2.db.close();
});
