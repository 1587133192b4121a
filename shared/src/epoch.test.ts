/** The database watch: restore epoch → reload in place; key rotation or a replaced file → stop with a message. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore } from './store.ts';
import { silentLogger } from './log.ts';
import { CLI_ACTOR } from './audit.ts';
import { rotateMasterKey } from './keys.ts';
import { createBackup, restoreBackup } from './backup.ts';
import { EXIT_DB_REPLACED, EXIT_KEY_ROTATED, watchDatabase } from './epoch.ts';

const KEY = Buffer.alloc(32, 4);
const setup = async () => {
  const dataDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'argos-epoch-')), 'data');
  return { dataDir, ...(await openStore({ dataDir, masterKey: KEY }, 'migrator')) };
};

test('a restore moves the epoch: the watcher calls onRestore once and keeps running', async () => {
  const s = await setup();
  const restored: number[] = [];
  const exits: string[] = [];
  const w = watchDatabase({
    service: 'test',
    db: s.db,
    vault: s.vault,
    log: silentLogger,
    intervalMs: 60_000,
    onRestore: (e) => void restored.push(e),
    exit: (m) => void exits.push(m),
  });
  await w.check();
  const ctx = { db: s.db, vault: s.vault, masterKey: KEY, dataDir: s.dataDir };
  const b = await createBackup(ctx, { kind: 'manual', actor: CLI_ACTOR });
  await w.check();
  assert.deepEqual(restored, [], 'a backup is not a restore');
  const r = await restoreBackup(ctx, b.file, { actor: CLI_ACTOR });
  await w.check();
  await w.check();
  assert.deepEqual(restored, [r.restoreEpoch]);
  assert.deepEqual(exits, []);
  w.stop();
  await s.db.close();
});

test('a key rotation stops the service with "master key rotated: restart with the new ARGOS_MASTER_KEY"', async () => {
  const s = await setup();
  const exits: Array<[string, number]> = [];
  const w = watchDatabase({ service: 'gatekeeper', db: s.db, vault: s.vault, log: silentLogger, intervalMs: 60_000, exit: (m, c) => void exits.push([m, c]) });
  await w.check();
  await rotateMasterKey(s.db, s.vault, Buffer.alloc(32, 8), CLI_ACTOR);
  await w.check();
  assert.equal(exits.length, 1);
  assert.match(exits[0]![0], /^master key rotated: restart with the new ARGOS_MASTER_KEY/);
  assert.equal(exits[0]![1], EXIT_KEY_ROTATED);
  w.stop();
  await s.db.close();
});

test('a database file replaced under the service stops it with a message', async () => {
  const s = await setup();
  const exits: Array<[string, number]> = [];
  const w = watchDatabase({ service: 'panel', db: s.db, vault: s.vault, log: silentLogger, intervalMs: 60_000, exit: (m, c) => void exits.push([m, c]) });
  await w.check();
  const file = path.join(s.dataDir, 'argos.db');
  fs.copyFileSync(file, `${file}.copy`);
  fs.renameSync(`${file}.copy`, file);
  await w.check();
  assert.equal(exits[0]?.[1], EXIT_DB_REPLACED);
  assert.match(exits[0]![0], /was replaced while the panel was running/);
  w.stop();
  await s.db.close();
});
