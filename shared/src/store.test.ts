import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore, MasterKeyMismatch, databasePath, changeCounter } from './store.ts';
import { Database } from './db/sqlite.ts';
import { migrate, SchemaMismatch, SCHEMA_VERSION, waitForSchema } from './db/migrate.ts';
import { mutate, verifyAuditChain, listAudit, CLI_ACTOR } from './audit.ts';
import { addHost } from './commands/hosts.ts';
import { storeSecret } from './commands/settings.ts';
import { readSecret } from './secrets.ts';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'argos-store-'));
const KEY = Buffer.alloc(32, 9);

test('a fresh data directory is created 0700 with a 0600 database, migrated to the current schema', async () => {
  const dir = path.join(tmp(), 'data');
  const { db } = await openStore({ dataDir: dir, masterKey: KEY }, 'migrator');
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.equal(fs.statSync(databasePath(dir)).mode & 0o777, 0o600);
  const v = await db.get<{ v: number }>('SELECT max(version) AS v FROM schema_migrations');
  assert.equal(v?.v, SCHEMA_VERSION);
  assert.deepEqual(await migrate(db), [], 'a second run applies nothing');
  await db.close();
});

test('when the master key does not match the database, then opening refuses with a clear message', async () => {
  const dir = tmp();
  const s = await openStore({ dataDir: dir, masterKey: KEY }, 'migrator');
  await storeSecret(s.db, s.vault, CLI_ACTOR, 'smtp.password', 'p4ss-w0rd-value');
  await s.db.close();
  await assert.rejects(openStore({ dataDir: dir, masterKey: Buffer.alloc(32, 1) }, 'migrator'), MasterKeyMismatch);
  const again = await openStore({ dataDir: dir, masterKey: KEY }, 'migrator');
  assert.equal(await readSecret(again.db, again.vault, 'smtp.password'), 'p4ss-w0rd-value');
  const raw = await again.db.get<{ value: string }>("SELECT value FROM secrets WHERE name = 'smtp.password'");
  assert.ok(raw && !raw.value.includes('p4ss'), 'stored encrypted');
  await again.db.close();
});

test('the gatekeeper side refuses a database newer than itself and waits for an older one', async () => {
  const dir = tmp();
  const db = await Database.open(path.join(dir, 'argos.db'));
  await assert.rejects(waitForSchema(db, 300), SchemaMismatch);
  await migrate(db);
  await db.write((tx) => tx.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [SCHEMA_VERSION + 1, 'future', 0]));
  await assert.rejects(waitForSchema(db, 300), /newer than this Argos/);
  await db.close();
});

test('the writer queue runs transactions one at a time; a failing one rolls back alone', async () => {
  const { db } = await openStore({ dataDir: tmp(), masterKey: KEY }, 'migrator');
  await db.write((tx) => tx.exec('CREATE TABLE t (n INTEGER)'));
  const jobs = Array.from({ length: 50 }, (_, i) =>
    db.write(async (tx) => {
      const row = await tx.get<{ c: number }>('SELECT count(*) AS c FROM t');
      await tx.run('INSERT INTO t (n) VALUES (?)', [row!.c]);
      if (i === 25) throw new Error('boom');
    }),
  );
  const results = await Promise.allSettled(jobs);
  assert.equal(results.filter((r) => r.status === 'rejected').length, 1);
  const rows = await db.all<{ n: number }>('SELECT n FROM t ORDER BY n');
  assert.deepEqual(rows.map((r) => r.n), Array.from({ length: 49 }, (_, i) => i), 'read-then-write never interleaves');
  await db.close();
});

test('a single-statement write holds the write lock only while SQLite runs it, not across turns of the event loop', async () => {
  const file = path.join(tmp(), 'lock.db');
  const db = await Database.open(file);
  await db.write((tx) => tx.exec('CREATE TABLE t (n INTEGER)'));
  // While a write of this process is in flight, every turn of its event loop blocks in a write by another process
  // (100 ms busy timeout): what the panel sees while a busy gatekeeper writes. The driver's steps (prepare, run)
  // finish on its own thread meanwhile, so a lock held between two steps is seen by the next turn's writer.
  const child = `const s = require(process.argv[1]); const d = new s.Database(process.argv[2]); d.configure('busyTimeout', 100);
    d.run('INSERT INTO t (n) VALUES (0)', (e) => { process.stdout.write(e ? String(e.code) : 'ok'); d.close(); });`;
  const sqlite = createRequire(import.meta.url).resolve('sqlite3');
  const othersWhileInFlight = async (write: Promise<unknown>) => {
    let done = false;
    const seen: string[] = [];
    void write.finally(() => (done = true));
    while (!done) {
      await new Promise((r) => setImmediate(r));
      if (!done) seen.push(spawnSync(process.execPath, ['-e', child, sqlite, file], { encoding: 'utf8' }).stdout);
    }
    await write;
    return seen;
  };

  const single = await othersWhileInFlight(db.writeStatement('INSERT INTO t (n) VALUES (1)'));
  assert.ok(single.length >= 1, 'the other process wrote while the statement was in flight');
  assert.deepEqual(new Set(single), new Set(['ok']), 'never locked out');

  // The contrast: BEGIN … COMMIT keeps the lock from BEGIN's step until COMMIT's, across turns of the loop.
  const transaction = await othersWhileInFlight(db.write((tx) => tx.run('INSERT INTO t (n) VALUES (2)')));
  assert.ok(transaction.includes('SQLITE_BUSY'), `locked out during the transaction: ${transaction.join(', ')}`);
  const rows = await db.all<{ n: number }>('SELECT n FROM t');
  assert.equal(rows.length, 2 + single.length + transaction.filter((r) => r === 'ok').length, 'no write lost');
  await db.close();
});

test('every mutation is audited in a verifiable hash chain, and a tampered row is detected', async () => {
  const { db } = await openStore({ dataDir: tmp(), masterKey: KEY }, 'migrator');
  const before = await changeCounter(db, 'config');
  await addHost(db, { name: 'cli', ip: '127.0.0.1' }, { domain: 'app.example.com', upstreams: 'http://10.0.0.5:8096' });
  await addHost(db, CLI_ACTOR, { domain: 'b.example.com', upstreams: 'http://10.0.0.6' });
  assert.ok((await changeCounter(db, 'config')) > before, 'the change signal moved');
  const entries = await listAudit(db, { action: 'host' });
  assert.deepEqual(entries.map((e) => e.action), ['host.create', 'host.create']);
  assert.deepEqual(await verifyAuditChain(db), { ok: true, checked: 2, brokenAt: null });
  await db.write((tx) => tx.run("UPDATE audit_log SET target = 'evil.example.com' WHERE id = 1"));
  assert.deepEqual(await verifyAuditChain(db), { ok: false, checked: 2, brokenAt: 1 });
  await db.close();
});

test('a failed command leaves neither the change nor an audit entry', async () => {
  const { db } = await openStore({ dataDir: tmp(), masterKey: KEY }, 'migrator');
  await assert.rejects(
    mutate(db, CLI_ACTOR, async (tx) => {
      await tx.run("INSERT INTO settings (key, value, updated_at) VALUES ('x', '1', 0)");
      throw new Error('validation failed late');
    }),
  );
  assert.equal((await db.all('SELECT * FROM settings')).length, 0);
  assert.equal((await db.all('SELECT * FROM audit_log')).length, 0);
  await db.close();
});
