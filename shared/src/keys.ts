/**
 * Key material derived from or protected by ARGOS_MASTER_KEY: the registry of every secret column, the
 * backup-signing key, and master-key rotation.
 *
 * Rotation re-encrypts every secret column (and the key-check value, and the backup-signing key) under the new
 * key at key version N+1 in ONE write transaction, decrypts everything again with the new key before COMMIT,
 * and only then bumps `meta.key_version`. Any failure rolls the whole transaction back, so the database stays
 * readable with the old key. The backup-signing key itself never changes, so backups made before a rotation
 * still verify after it.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Queryable, Tx, Database } from './db/sqlite.ts';
import { DecryptError, Vault, type SecretLocation } from './crypto.ts';
import { appendAudit, type Actor } from './audit.ts';
import { KEY_CHECK, KEY_CHECK_PLAINTEXT } from './store.ts';
import { CommandError } from './commands/errors.ts';

export const SIGNING_KEY_LOC: SecretLocation = { table: 'meta', row: 'backup_signing_key', column: 'value' };

/** One stored ciphertext: where it lives (its AAD) and its current value. */
export interface StoredSecret {
  loc: SecretLocation;
  value: string;
}

/**
 * Every Vault ciphertext in the database, by column. A new secret column must be added here (a test scans
 * the database for ciphertexts this registry does not know).
 */
export async function storedSecrets(q: Queryable): Promise<StoredSecret[]> {
  const out: StoredSecret[] = [];
  for (const r of await q.all<{ name: string; value: string }>('SELECT name, value FROM secrets ORDER BY name')) {
    out.push({ loc: { table: 'secrets', row: r.name, column: 'value' }, value: r.value });
  }
  for (const r of await q.all<{ id: number; totp_secret: string }>('SELECT id, totp_secret FROM users WHERE totp_secret IS NOT NULL ORDER BY id')) {
    out.push({ loc: { table: 'users', row: r.id, column: 'totp_secret' }, value: r.totp_secret });
  }
  for (const r of await q.all<{ key: string; value: string }>("SELECT key, value FROM meta WHERE key IN ('key_check', 'backup_signing_key') ORDER BY key")) {
    out.push({ loc: { table: 'meta', row: r.key, column: 'value' }, value: r.value });
  }
  return out;
}

async function writeSecret(tx: Tx, loc: SecretLocation, value: string): Promise<void> {
  if (loc.table === 'secrets') await tx.run('UPDATE secrets SET value = ? WHERE name = ?', [value, String(loc.row)]);
  else if (loc.table === 'users') await tx.run('UPDATE users SET totp_secret = ? WHERE id = ?', [value, Number(loc.row)]);
  else if (loc.table === 'meta') await tx.run('UPDATE meta SET value = ? WHERE key = ?', [value, String(loc.row)]);
  else throw new Error(`unknown secret column ${loc.table}.${loc.column}`);
}

const describe = (loc: SecretLocation) => `${loc.table}/${loc.row}/${loc.column}`;

export interface ReencryptHooks {
  /** Called after each value is rewritten (tests: simulate an interruption by throwing). */
  afterEach?: (done: number, total: number) => void;
}

export interface ReencryptResult {
  secrets: number;
  totpSeeds: number;
  fromVersion: number;
  toVersion: number;
}

/**
 * Inside an open write transaction: decrypts every secret with `from`, encrypts it with `to`, writes it back,
 * reads everything back and decrypts it with `to`, then records `to`'s key version. Throws (so the caller's
 * transaction rolls back) if any value fails to decrypt or verify.
 */
export async function reencryptAll(tx: Tx, from: Vault, to: Vault, hooks: ReencryptHooks = {}): Promise<ReencryptResult> {
  const stored = await storedSecrets(tx);
  if (!stored.some((s) => s.loc.table === 'meta' && s.loc.row === 'key_check')) {
    stored.push({ loc: KEY_CHECK, value: from.encrypt(KEY_CHECK_PLAINTEXT, KEY_CHECK) });
    await tx.run("INSERT INTO meta (key, value) VALUES ('key_check', '')");
  }
  const plain = new Map<string, string>();
  for (const s of stored) {
    try {
      plain.set(describe(s.loc), from.decrypt(s.value, s.loc));
    } catch (e) {
      if (e instanceof DecryptError) throw new CommandError(`cannot decrypt ${describe(s.loc)} with the current key: ${e.message}. Nothing was changed.`, 409);
      throw e;
    }
  }
  let done = 0;
  for (const s of stored) {
    await writeSecret(tx, s.loc, to.encrypt(plain.get(describe(s.loc))!, s.loc));
    hooks.afterEach?.(++done, stored.length);
  }
  const again = await storedSecrets(tx);
  if (again.length !== stored.length) throw new Error('re-encryption verify: the number of secrets changed');
  for (const s of again) {
    let value: string;
    try {
      value = to.decrypt(s.value, s.loc);
    } catch {
      throw new Error(`re-encryption verify failed for ${describe(s.loc)}; nothing was changed`);
    }
    if (value !== plain.get(describe(s.loc))) throw new Error(`re-encryption verify: ${describe(s.loc)} differs; nothing was changed`);
  }
  await tx.run("INSERT INTO meta (key, value) VALUES ('key_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [String(to.keyVersion)]);
  return {
    secrets: stored.filter((s) => s.loc.table === 'secrets').length,
    totpSeeds: stored.filter((s) => s.loc.table === 'users').length,
    fromVersion: from.keyVersion,
    toVersion: to.keyVersion,
  };
}

/** Parses a 64-hex-character master key (the same rule as ARGOS_MASTER_KEY). */
export function parseMasterKey(raw: string, name = 'the new master key'): Buffer {
  const text = raw.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new CommandError(`${name} must be exactly 64 hex characters (openssl rand -hex 32); the value is not shown`, 400);
  return Buffer.from(text, 'hex');
}

/**
 * `argos rotate-master-key`: re-encrypts every secret under `newKey` at key version N+1, in one transaction,
 * audited as `system.master_key.rotate` (the audit entry names versions and counts, never key material).
 */
export async function rotateMasterKey(db: Database, current: Vault, newKey: Buffer, actor: Actor, hooks: ReencryptHooks = {}): Promise<ReencryptResult> {
  return db.write(async (tx) => {
    const row = await tx.get<{ value: string }>("SELECT value FROM meta WHERE key = 'key_version'");
    const version = row ? Number(row.value) : 1;
    if (version !== current.keyVersion)
      throw new CommandError(`the database is at key version ${version}, this process has ${current.keyVersion}: it was rotated meanwhile`, 409);
    const probe = new Vault(newKey, version);
    const check = await tx.get<{ value: string }>("SELECT value FROM meta WHERE key = 'key_check'");
    if (check) {
      let same: boolean;
      try {
        same = probe.decrypt(check.value, KEY_CHECK) === KEY_CHECK_PLAINTEXT;
      } catch {
        same = false;
      }
      if (same) throw new CommandError('the new master key is the same as the current one; generate a new one (openssl rand -hex 32)', 400);
    }
    const result = await reencryptAll(tx, current, new Vault(newKey, version + 1), hooks);
    await appendAudit(tx, actor, {
      action: 'system.master_key.rotate',
      target: 'master_key',
      details: { from_version: result.fromVersion, to_version: result.toVersion, named_values: result.secrets, two_factor_users: result.totpSeeds },
    });
    return result;
  });
}

/** A short public identifier of a signing key (first 16 hex of its SHA-256), so a manifest can say which key signed it. */
export const signingKeyId = (key: Buffer): string => createHash('sha256').update('argos-backup-signing-key-id').update(key).digest('hex').slice(0, 16);

/** The stored (encrypted) backup-signing key, decrypted, or null when none was created yet. */
export async function readSigningKey(q: Queryable, vault: Vault): Promise<Buffer | null> {
  const row = await q.get<{ value: string }>("SELECT value FROM meta WHERE key = 'backup_signing_key'");
  return row ? Buffer.from(vault.decrypt(row.value, SIGNING_KEY_LOC), 'base64url') : null;
}

/** The encrypted form of the signing key as stored (for the manifest: lets a fresh install holding the same master key verify). */
export async function wrappedSigningKey(q: Queryable): Promise<string | null> {
  return (await q.get<{ value: string }>("SELECT value FROM meta WHERE key = 'backup_signing_key'"))?.value ?? null;
}

/** The backup-signing key: a random 256-bit key created on first use, stored encrypted under the master key. Creation is audited. */
export async function ensureSigningKey(db: Database, vault: Vault, actor: Actor): Promise<Buffer> {
  const existing = await readSigningKey(db, vault);
  if (existing) return existing;
  await db.write(async (tx) => {
    if (await tx.get("SELECT 1 FROM meta WHERE key = 'backup_signing_key'")) return;
    const key = randomBytes(32);
    await tx.run("INSERT INTO meta (key, value) VALUES ('backup_signing_key', ?)", [vault.encrypt(key.toString('base64url'), SIGNING_KEY_LOC)]);
    await appendAudit(tx, actor, { action: 'backup.signing_key.create', target: 'backup_signing_key', details: { id: signingKeyId(key) } });
  });
  return (await readSigningKey(db, vault))!;
}
