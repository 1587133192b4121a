/**
 * Backups and restore, in process: the round trip, hostile archives (each refused with nothing written outside a
 * temporary folder and the live database byte-identical), schema handling, fresh-install recovery, retention.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { openStore, type Store } from './store.ts';
import { Database } from './db/sqlite.ts';
import { listMigrations, migrate, SCHEMA_VERSION } from './db/migrate.ts';
import { CLI_ACTOR, listAudit, verifyAuditChain } from './audit.ts';
import { addHost, removeHost } from './commands/hosts.ts';
import { addUser, removeUser } from './commands/users.ts';
import { storeSecret } from './commands/settings.ts';
import { provisionTotp } from './commands/identity.ts';
import { readSecret } from './secrets.ts';
import { decryptTotpSecret } from './totp.ts';
import { createSession, getSessionByToken, revokeSession } from './repos/sessions.ts';
import { listHosts } from './repos/hosts.ts';
import { getUser } from './repos/users.ts';
import { checkMasterKey } from './store.ts';
import { readSigningKey } from './keys.ts';
import { readTar, tarEnd, tarHeader, tarPadding, type HeaderFields } from './tar.ts';
import {
  BackupRefused,
  backupsDir,
  createBackup,
  listBackups,
  manifestHmac,
  pruneBackups,
  restoreBackup,
  runScheduledBackup,
  verifyBackup,
  writeArchive,
  type BackupContext,
  type Manifest,
} from './backup.ts';

const KEY = Buffer.alloc(32, 5);
const scratch = () => fs.mkdtempSync(path.join(os.tmpdir(), 'argos-backup-test-'));
const sha = (f: string) => (fs.existsSync(f) ? createHash('sha256').update(fs.readFileSync(f)).digest('hex') : 'absent');

interface Env {
  dataDir: string;
  store: Store;
  ctx: BackupContext;
}

async function setup(masterKey = KEY): Promise<Env> {
  const dataDir = path.join(scratch(), 'data');
  const store = await openStore({ dataDir, masterKey }, 'migrator');
  return { dataDir, store, ctx: { db: store.db, vault: store.vault, masterKey, dataDir } };
}

const session = (userId: number) => ({
  kind: 'portal' as const,
  userId,
  factors: 1,
  authMethod: 'password',
  remember: false,
  lifetimeS: 86_400,
  idleTimeoutS: 3600,
  ip: '10.0.0.1',
  userAgent: 't',
});

/** Every file under the data directory with its hash (-shm is SQLite's shared-memory index, not data). */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!e.name.endsWith('-shm')) out[path.relative(dir, p)] = sha(p);
    }
  };
  walk(dir);
  return out;
}

/** The two entries of an archive, read with the strict reader. */
async function entries(file: string): Promise<{ manifest: string; db: Buffer }> {
  const parts: Record<string, Buffer[]> = {};
  await readTar(
    (async function* () {
      yield zlib.gunzipSync(fs.readFileSync(file));
    })(),
    (h) => {
      parts[h.name] = [];
      return { write: (c) => void parts[h.name]!.push(Buffer.from(c)), end: () => undefined };
    },
  );
  return { manifest: Buffer.concat(parts['manifest.json']!).toString('utf8'), db: Buffer.concat(parts['argos.db']!) };
}

type Entry = { header: HeaderFields; data?: Buffer };
const entry = (name: string, data: Buffer, extra: Partial<HeaderFields> = {}): Entry => ({ header: { name, size: data.length, ...extra }, data });

function tarGz(list: Entry[]): Buffer {
  const chunks: Buffer[] = [];
  for (const e of list) {
    chunks.push(tarHeader(e.header));
    if (e.data) chunks.push(e.data, tarPadding(e.data.length));
  }
  chunks.push(tarEnd());
  return zlib.gzipSync(Buffer.concat(chunks));
}

/**
 * Runs one hostile restore: refused with a message matching `why`, the live database byte-identical, nothing new
 * in the data directory (the temporary folder is gone), and the `outside` paths never created.
 */
async function refuses(env: Env, archive: Buffer | string, why: RegExp, outside: string[] = []): Promise<void> {
  const file = typeof archive === 'string' ? archive : path.join(scratch(), 'hostile.tar.gz');
  if (typeof archive !== 'string') fs.writeFileSync(file, archive);
  const db = path.join(env.dataDir, 'argos.db');
  const before = { db: sha(db), wal: sha(`${db}-wal`), tree: tree(env.dataDir) };
  await assert.rejects(restoreBackup(env.ctx, file, { actor: CLI_ACTOR }), (e: unknown) => {
    assert.ok(e instanceof BackupRefused, `expected a refusal, got ${String(e)}`);
    assert.match(e.message, why);
    return true;
  });
  assert.equal(sha(db), before.db, 'the live database file is byte-identical');
  assert.equal(sha(`${db}-wal`), before.wal, 'nothing was written to the live WAL');
  assert.deepEqual(tree(env.dataDir), before.tree, 'nothing was left in the data directory');
  for (const p of outside) assert.equal(fs.existsSync(p), false, `${p} was not created`);
}

test('round trip: hosts, users, secrets and TOTP → backup → changes → restore → the original state, secrets decrypt', async () => {
  const env = await setup();
  const { db, vault } = env.store;
  await addHost(db, CLI_ACTOR, { domain: 'app.example.test', upstreams: 'http://10.0.0.5:8096' });
  const alice = await addUser(db, CLI_ACTOR, { username: 'alice', password: 'alice-password-1' });
  await addUser(db, CLI_ACTOR, { username: 'bob', password: 'bob-password-1' });
  const { secret: seed } = await provisionTotp(db, vault, CLI_ACTOR, 'alice');
  await storeSecret(db, vault, CLI_ACTOR, 'smtp.password', 'smtp-original-pw');
  const kept = await db.write((tx) => createSession(tx, session(alice.id)));
  const revokedLater = await db.write((tx) => createSession(tx, session(alice.id)));

  const backup = await createBackup(env.ctx, { kind: 'manual', actor: CLI_ACTOR });
  assert.equal(fs.statSync(backup.file).mode & 0o777, 0o600, 'backup file is 0600');
  assert.equal(fs.statSync(backupsDir(env.dataDir)).mode & 0o777, 0o700, 'backups folder is 0700');
  const recorded = await db.get<{ db_sha256: string }>('SELECT db_sha256 FROM backups WHERE name = ?', [backup.name]);
  assert.equal(recorded?.db_sha256, backup.dbSha256, 'the SHA-256 is recorded in the database');
  assert.equal((await verifyBackup(env.ctx, backup.file)).recorded, true);

  // Things change after the backup.
  await addHost(db, CLI_ACTOR, { domain: 'new.example.test', upstreams: 'http://10.0.0.6' });
  await removeHost(db, CLI_ACTOR, 'app.example.test');
  await removeUser(db, CLI_ACTOR, 'bob');
  await storeSecret(db, vault, CLI_ACTOR, 'smtp.password', 'smtp-changed-pw');
  await db.write((tx) => revokeSession(tx, revokedLater.id));
  const after = await db.write((tx) => createSession(tx, session(alice.id)));
  const epochBefore = (await db.get<{ counter: number }>("SELECT counter FROM changes WHERE topic = 'restore'"))!.counter;

  const r = await restoreBackup(env.ctx, backup.file, { actor: CLI_ACTOR });
  assert.equal(r.restored, backup.name);
  assert.equal(r.migratedFrom, null);
  assert.deepEqual(
    (await listHosts(db)).map((h) => h.domain),
    ['app.example.test'],
  );
  assert.ok(await getUser(db, 'bob'), 'bob is back');
  assert.equal(await readSecret(db, vault, 'smtp.password'), 'smtp-original-pw');
  const a = (await getUser(db, 'alice'))!;
  assert.equal(decryptTotpSecret(vault, a.id, a.totpSecret!), seed, 'the TOTP seed decrypts');
  assert.equal((await getSessionByToken(db, kept.token))?.revokedAt, null, 'a session alive before and after stays alive');
  assert.notEqual((await getSessionByToken(db, revokedLater.token))?.revokedAt, null, 'a session revoked after the backup is not revived');
  assert.equal((await getSessionByToken(db, after.token))?.revokedAt, null, 'a session created after the backup is carried over');
  assert.ok((await db.get<{ counter: number }>("SELECT counter FROM changes WHERE topic = 'restore'"))!.counter > epochBefore, 'the restore epoch moved');
  assert.deepEqual(await verifyAuditChain(db), { ok: true, checked: (await db.all('SELECT id FROM audit_log')).length, brokenAt: null });
  const [last] = await listAudit(db, { limit: 1 });
  assert.equal(last?.action, 'backup.restore');
  assert.match(last!.details, new RegExp(r.safetyBackup));

  // The safety backup of the replaced database is listed, recorded and verifies; the restore left no temporary folder.
  const names = (await listBackups(env.ctx)).map((b) => b.name);
  assert.ok(names.includes(r.safetyBackup));
  assert.equal((await verifyBackup(env.ctx, path.join(backupsDir(env.dataDir), r.safetyBackup))).recorded, true);
  assert.deepEqual(
    fs.readdirSync(env.dataDir).filter((n) => n.startsWith('.')),
    [],
  );

  // A fresh process opens the restored database with the same key.
  await db.close();
  const again = await openStore({ dataDir: env.dataDir, masterKey: KEY }, 'migrator');
  assert.equal(await readSecret(again.db, again.vault, 'smtp.password'), 'smtp-original-pw');
  await again.db.close();
});

test('hostile archives are refused before anything is written; the live database stays byte-identical', async (t) => {
  const env = await setup();
  await addHost(env.store.db, CLI_ACTOR, { domain: 'app.example.test', upstreams: 'http://10.0.0.5' });
  const good = await createBackup(env.ctx, { kind: 'manual', actor: CLI_ACTOR });
  await addHost(env.store.db, CLI_ACTOR, { domain: 'other.example.test', upstreams: 'http://10.0.0.6' });
  const second = await createBackup(env.ctx, { kind: 'manual', actor: CLI_ACTOR });
  const { manifest, db } = await entries(good.file);
  const otherDb = (await entries(second.file)).db;
  const m = Buffer.from(manifest);
  const evil = path.join(scratch(), 'evil');

  await t.test('a ../ entry', () =>
    refuses(env, tarGz([entry('manifest.json', m), entry('../argos.db', db)]), /climbs out/, [path.join(env.dataDir, '..', 'argos.db')]),
  );
  await t.test('an absolute path', () => refuses(env, tarGz([entry('manifest.json', m), entry(`${evil}/argos.db`, db)]), /absolute path/, [evil]));
  await t.test('a symlink to /etc', () =>
    refuses(env, tarGz([entry('manifest.json', m), { header: { name: 'argos.db', size: 0, type: '2', linkname: '/etc' } }]), /symbolic link/),
  );
  await t.test('a hard link', () =>
    refuses(env, tarGz([entry('manifest.json', m), { header: { name: 'argos.db', size: 0, type: '1', linkname: 'manifest.json' } }]), /hard link/),
  );
  await t.test('a device', () => refuses(env, tarGz([entry('manifest.json', m), { header: { name: 'argos.db', size: 0, type: '3' } }]), /character device/));
  await t.test('a directory entry', () => refuses(env, tarGz([{ header: { name: 'x', size: 0, type: '5' } }]), /directory/));
  await t.test('duplicate names', () => refuses(env, tarGz([entry('manifest.json', m), entry('manifest.json', m), entry('argos.db', db)]), /duplicate entry/));
  await t.test('an unexpected entry', () => refuses(env, tarGz([entry('manifest.json', m), entry('run.sh', Buffer.from('#!/bin/sh\n'))]), /unexpected entry/));
  await t.test('an oversized entry (database)', () =>
    refuses(env, tarGz([entry('manifest.json', m), { header: { name: 'argos.db', size: 3 * 1024 ** 3 } }]), /over the \d+-byte limit/),
  );
  await t.test('an oversized entry (manifest)', () => refuses(env, tarGz([entry('manifest.json', Buffer.alloc(70_000, 0x20))]), /over the \d+-byte limit/));
  await t.test('a gzip bomb', () => {
    // 1 GiB declared (under the entry limit), 70 MiB of zeros that compress to ~70 KiB: the decompression cap trips.
    const bomb = zlib.gzipSync(
      Buffer.concat([
        tarHeader({ name: 'manifest.json', size: m.length }),
        m,
        tarPadding(m.length),
        tarHeader({ name: 'argos.db', size: 1024 ** 3 }),
        Buffer.alloc(70 * 1024 * 1024),
      ]),
      { level: 9 },
    );
    return refuses(env, bomb, /compression bomb/);
  });
  await t.test('a wrong HMAC', () => {
    const forged = JSON.parse(manifest) as Manifest;
    forged.hmac = (forged.hmac[0] === 'a' ? 'b' : 'a') + forged.hmac.slice(1);
    return refuses(env, tarGz([entry('manifest.json', Buffer.from(JSON.stringify(forged))), entry('argos.db', db)]), /HMAC does not verify/);
  });
  await t.test('an altered manifest under the original HMAC', () => {
    const altered = JSON.parse(manifest) as Manifest;
    altered.created = '2020-01-01T00:00:00.000Z';
    return refuses(env, tarGz([entry('manifest.json', Buffer.from(JSON.stringify(altered))), entry('argos.db', db)]), /HMAC does not verify/);
  });
  await t.test('the right HMAC but a swapped database', () =>
    refuses(env, tarGz([entry('manifest.json', m), entry('argos.db', otherDb)]), /swapped or altered/),
  );
  await t.test('a truncated file', () => {
    const whole = fs.readFileSync(good.file);
    return refuses(env, whole.subarray(0, Math.floor(whole.length * 0.6)), /truncated|not a valid gzip/);
  });
  await t.test('a tar truncated inside an entry (valid gzip)', () => {
    const raw = Buffer.concat([
      tarHeader({ name: 'manifest.json', size: m.length }),
      m,
      tarPadding(m.length),
      tarHeader({ name: 'argos.db', size: db.length }),
      db.subarray(0, 1000),
    ]);
    return refuses(env, zlib.gzipSync(raw), /truncated/);
  });
  await t.test('not a gzip file at all', () => refuses(env, Buffer.from('this is not an archive'), /not a valid gzip/));
  await t.test('a missing database entry', () => refuses(env, tarGz([entry('manifest.json', m)]), /lacks argos\.db/));
  await t.test('a symlinked backup path', () => {
    const link = path.join(scratch(), 'link.tar.gz');
    fs.symlinkSync(good.file, link);
    return refuses(env, link, /symbolic link/);
  });
  await t.test('a signed manifest from another installation', async () => {
    const stranger = await setup(Buffer.alloc(32, 77));
    const theirs = await createBackup(stranger.ctx, { kind: 'manual', actor: CLI_ACTOR });
    await refuses(env, theirs.file, /signed with a key this installation does not have/);
    await stranger.store.db.close();
  });
  await env.store.db.close();
});

/** Signs a manifest for a database file with this installation's key (to build well-signed but unusual backups). */
async function signedArchive(env: Env, dbFile: string, schema: number): Promise<string> {
  const key = (await readSigningKey(env.store.db, env.store.vault))!;
  const good = JSON.parse((await entries((await listBackups(env.ctx))[0]!.file)).manifest) as Manifest;
  const bytes = fs.readFileSync(dbFile);
  const { hmac: _old, ...body } = { ...good, schema_version: schema, db_size: bytes.length, db_sha256: createHash('sha256').update(bytes).digest('hex') };
  const out = path.join(scratch(), 'signed.tar.gz');
  await writeArchive(out, JSON.stringify({ ...body, hmac: manifestHmac(key, body) }), dbFile, bytes.length);
  return out;
}

test('a backup from a newer Argos is refused; one from an older schema is migrated', async () => {
  const env = await setup();
  await createBackup(env.ctx, { kind: 'manual', actor: CLI_ACTOR });

  // Newer: a well-signed copy whose schema is ahead of this build.
  const newer = path.join(scratch(), 'newer.db');
  await env.store.db.vacuumInto(newer);
  const n = await Database.open(newer);
  await n.write((tx) => tx.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [SCHEMA_VERSION + 1, 'future', 0]));
  await n.close();
  const flat = path.join(scratch(), 'newer-flat.db');
  const n2 = await Database.open(newer);
  await n2.vacuumInto(flat);
  await n2.close();
  await refuses(env, await signedArchive(env, flat, SCHEMA_VERSION + 1), /newer Argos/);

  // Corrupt: a well-signed database whose pages are damaged fails the integrity check.
  const corrupt = path.join(scratch(), 'corrupt.db');
  await env.store.db.vacuumInto(corrupt);
  const bytes = fs.readFileSync(corrupt);
  bytes.fill(0xa5, 4096 * 4, 4096 * 5); // a whole page, header included
  fs.writeFileSync(corrupt, bytes);
  await refuses(env, await signedArchive(env, corrupt, SCHEMA_VERSION), /integrity check|not a usable SQLite database|cannot be opened|malformed/);

  // Older: a database at schema 1 (with a host), made under the same master key.
  const oldFile = path.join(scratch(), 'old.db');
  const o = await Database.open(oldFile);
  await migrate(
    o,
    listMigrations().filter((mg) => mg.version === 1),
  );
  await checkMasterKey(o, env.store.vault);
  await addHost(o, CLI_ACTOR, { domain: 'legacy.example.test', upstreams: 'http://10.0.0.9' });
  const oldFlat = path.join(scratch(), 'old-flat.db');
  await o.vacuumInto(oldFlat);
  await o.close();
  const r = await restoreBackup(env.ctx, await signedArchive(env, oldFlat, 1), { actor: CLI_ACTOR });
  assert.equal(r.migratedFrom, 1);
  assert.deepEqual(
    (await listHosts(env.store.db)).map((h) => h.domain),
    ['legacy.example.test'],
  );
  assert.equal((await env.store.db.get<{ v: number }>('SELECT max(version) AS v FROM schema_migrations'))?.v, SCHEMA_VERSION);
  assert.ok((await listBackups(env.ctx)).length >= 2, 'the backups made before are still listed and recorded');
  await env.store.db.close();
});

test('disaster recovery: a fresh installation with the same master key verifies and restores a backup through the wrapped signing key', async () => {
  const old = await setup();
  await addHost(old.store.db, CLI_ACTOR, { domain: 'app.example.test', upstreams: 'http://10.0.0.5' });
  await storeSecret(old.store.db, old.store.vault, CLI_ACTOR, 'webhook.token', 'hook-token-value');
  const b = await createBackup(old.ctx, { kind: 'manual', actor: CLI_ACTOR });
  await old.store.db.close();

  const fresh = await setup();
  const v = await verifyBackup(fresh.ctx, b.file);
  assert.equal(v.signedBy, 'the wrapped key (same master key)');
  assert.equal(v.recorded, false);
  await restoreBackup(fresh.ctx, b.file, { actor: CLI_ACTOR });
  assert.deepEqual(
    (await listHosts(fresh.store.db)).map((h) => h.domain),
    ['app.example.test'],
  );
  assert.equal(await readSecret(fresh.store.db, fresh.store.vault, 'webhook.token'), 'hook-token-value');
  await fresh.store.db.close();
});

test('scheduled backups follow backup.schedule, and retention keeps the newest backup.keep (at least one)', async () => {
  const env = await setup();
  const t0 = Date.parse('2026-03-01T00:00:00Z');
  assert.ok(await runScheduledBackup(env.ctx, 'daily', 3, t0), 'the first one is due at once');
  assert.equal(await runScheduledBackup(env.ctx, 'daily', 3, t0 + 3_600_000), null, 'not again within the day');
  assert.equal(await runScheduledBackup(env.ctx, 'off', 3, t0 + 10 * 86_400_000), null, 'off means never');
  for (let d = 1; d <= 4; d++) assert.ok(await runScheduledBackup(env.ctx, 'daily', 3, t0 + d * 86_400_000));
  const left = await listBackups(env.ctx);
  assert.equal(left.length, 3);
  assert.equal(left[0]!.createdAt, t0 + 4 * 86_400_000, 'the newest is kept');
  const deleted = await env.store.db.all<{ name: string }>('SELECT name FROM backups WHERE deleted_at IS NOT NULL');
  assert.equal(deleted.length, 2, 'pruned backups stay recorded as deleted');
  assert.ok((await listAudit(env.store.db, { action: 'backup.delete' })).length >= 1, 'retention is audited');
  assert.deepEqual(await pruneBackups(env.ctx, 0, CLI_ACTOR), [left[1]!.name, left[2]!.name], 'keep 0 still keeps the newest');
  assert.equal((await listBackups(env.ctx)).length, 1);
  await env.store.db.close();
});
