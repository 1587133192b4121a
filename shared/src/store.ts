/**
 * Opening Argos's data directory and database for one process: directory modes, migrations
 * (or the schema wait for the gatekeeper), and the master-key check.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config.ts';
import { Database } from './db/sqlite.ts';
import { migrate, waitForSchema } from './db/migrate.ts';
import { DecryptError, Vault } from './crypto.ts';

export class MasterKeyMismatch extends Error {
  constructor() {
    super(
      'ARGOS_MASTER_KEY does not match this database: it was created or last rotated with another key. ' +
        'Put the right key in .env (from your password manager). Nothing was changed.',
    );
    this.name = 'MasterKeyMismatch';
  }
}

export const KEY_CHECK = { table: 'meta', row: 'key_check', column: 'value' } as const;
export const KEY_CHECK_PLAINTEXT = 'argos-master-key-check-v1';

export function databasePath(dataDir: string): string {
  return path.join(dataDir, 'argos.db');
}

/** Creates the data directory (0700) if needed and tightens its mode. */
export function ensureDataDir(dataDir: string): void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dataDir, 0o700);
}

export interface Store {
  db: Database;
  vault: Vault;
}

/** The key version recorded in the database (bumped by master-key rotation). */
export async function keyVersion(db: Database): Promise<number> {
  const row = await db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'key_version'");
  return row ? Number(row.value) : 1;
}

/**
 * Opens the database for a service or the CLI. `role: 'migrator'` applies migrations (panel, CLI);
 * `role: 'reader'` waits for the expected schema (gatekeeper). Verifies the master key against the
 * stored key-check value, writing it on first use.
 */
export async function openStore(config: Pick<Config, 'dataDir' | 'masterKey'>, role: 'migrator' | 'reader'): Promise<Store> {
  ensureDataDir(config.dataDir);
  const db = await Database.open(databasePath(config.dataDir));
  try {
    if (role === 'migrator') await migrate(db);
    else await waitForSchema(db);
    const version = await keyVersion(db);
    const vault = new Vault(config.masterKey, version);
    await checkMasterKey(db, vault);
    return { db, vault };
  } catch (e) {
    await db.close().catch(() => undefined);
    throw e;
  }
}

export async function checkMasterKey(db: Database, vault: Vault): Promise<void> {
  const row = await db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'key_check'");
  if (!row) {
    await db.write(async (tx) => {
      const again = await tx.get("SELECT 1 FROM meta WHERE key = 'key_check'");
      if (!again) await tx.run("INSERT INTO meta (key, value) VALUES ('key_check', ?)", [vault.encrypt(KEY_CHECK_PLAINTEXT, KEY_CHECK)]);
    });
    return checkMasterKey(db, vault);
  }
  try {
    if (vault.decrypt(row.value, KEY_CHECK) !== KEY_CHECK_PLAINTEXT) throw new MasterKeyMismatch();
  } catch (e) {
    if (e instanceof DecryptError) throw new MasterKeyMismatch();
    throw e;
  }
}

/** The current value of a change topic's counter (see migration 001). */
export async function changeCounter(db: Database, topic: 'config' | 'sessions' | 'restore' | 'bans'): Promise<number> {
  return (await db.get<{ counter: number }>('SELECT counter FROM changes WHERE topic = ?', [topic]))?.counter ?? 0;
}
