/**
 * Backups and restore.
 *
 * A backup is `<data dir>/backups/argos-backup-<UTC stamp>-<kind>-<rand>.tar.gz` (mode 0600) holding exactly two
 * entries: `manifest.json` (Argos version, schema version, creation time, size and SHA-256 of the database file,
 * the id and wrapped form of the signing key, and an HMAC-SHA-256 over all of it) and `argos.db`, a `VACUUM INTO`
 * snapshot taken through Argos's own generated path. The SHA-256 is also recorded in the `backups` table.
 *
 * The HMAC key is a random backup-signing key stored encrypted under the master key (keys.ts). Rotation
 * re-encrypts it without changing it, so older backups keep verifying. A fresh installation holding the same
 * master key verifies through the wrapped key in the manifest (AES-GCM under the master key: only its holder can
 * produce one), so disaster recovery onto a new machine works.
 *
 * Restore never trusts the archive: size limits, the tar structure (regular files with the two expected names,
 * nothing else), the decompressed size (compression bombs), the HMAC and the SHA-256 are all checked in a first
 * pass that writes nothing. Only then are the two entries extracted into a fresh temporary folder inside the data
 * directory, the database checked (`PRAGMA integrity_check`, Argos schema no newer than this build, master key),
 * migrated if older, adjusted (secrets re-encrypted to the live key version, sessions and tokens revoked since the
 * backup stay revoked), a safety backup of the live database taken, and the content copied into the live database
 * in one atomic step with SQLite's online backup API: every process keeps its connection and sees the restored
 * content at once, the restore epoch (`changes.restore`) and the change counters move, and nothing is renamed
 * under a running service. Every refusal says why and leaves the live database untouched.
 */
import { createHash, randomBytes, timingSafeEqual, createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { Database, ReadonlyDatabase, type Queryable } from './db/sqlite.ts';
import { migrate, SCHEMA_VERSION, schemaVersion } from './db/migrate.ts';
import { DecryptError, Vault } from './crypto.ts';
import { appendAudit, mutate, SYSTEM_ACTOR, type Actor } from './audit.ts';
import { CommandError } from './commands/errors.ts';
import { ensureSigningKey, readSigningKey, reencryptAll, SIGNING_KEY_LOC, signingKeyId, wrappedSigningKey } from './keys.ts';
import { KEY_CHECK, KEY_CHECK_PLAINTEXT } from './store.ts';
import { readTar, tarEnd, tarHeader, tarPadding, TarError, safeName, type EntrySink } from './tar.ts';

const ROOT_PACKAGE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
export const ARGOS_VERSION: string = (() => {
  try {
    return String((JSON.parse(fs.readFileSync(ROOT_PACKAGE, 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
})();

export const BACKUP_FORMAT = 'argos-backup/1';
export const MANIFEST_ENTRY = 'manifest.json';
export const DB_ENTRY = 'argos.db';
const MiB = 1024 * 1024;

export interface BackupLimits {
  /** Largest archive file accepted (compressed bytes). */
  archiveBytes: number;
  /** Largest argos.db entry. */
  dbBytes: number;
  /** Largest manifest.json entry. */
  manifestBytes: number;
  /** Decompressed bytes may reach max(inflateAllowance, ratio × archive size), and never more than inflatedBytes. */
  ratio: number;
  inflateAllowance: number;
  inflatedBytes: number;
}

export const DEFAULT_LIMITS: BackupLimits = {
  archiveBytes: 512 * MiB,
  dbBytes: 2048 * MiB,
  manifestBytes: 64 * 1024,
  ratio: 100,
  inflateAllowance: 64 * MiB,
  inflatedBytes: 2100 * MiB,
};

export type BackupKind = 'manual' | 'scheduled' | 'safety';
export const BACKUP_NAME = /^argos-backup-(\d{8}T\d{6}Z)-(manual|scheduled|safety)-([0-9a-f]{6})\.tar\.gz$/;

export interface Manifest {
  format: string;
  argos_version: string;
  schema_version: number;
  key_version: number;
  created: string;
  db_entry: string;
  db_size: number;
  db_sha256: string;
  signing_key_id: string;
  signing_key: string;
  hmac: string;
}

/** What a backup operation needs: the live database, its vault, the raw master key (to unwrap older key versions) and the data directory. */
export interface BackupContext {
  db: Database;
  vault: Vault;
  masterKey: Buffer;
  dataDir: string;
}

/** A refused verification or restore: the message says why; the live database was not changed. */
export class BackupRefused extends CommandError {
  constructor(reason: string, status = 422) {
    super(reason, status);
    this.name = 'BackupRefused';
  }
}

export const backupsDir = (dataDir: string) => path.join(dataDir, 'backups');

function ensureBackupsDir(dataDir: string): string {
  const dir = backupsDir(dataDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  return dir;
}

const stamp = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');

// ---------------------------------------------------------------------------------------------- manifest and HMAC

const MANIFEST_FIELDS: Record<keyof Omit<Manifest, 'hmac'>, 'string' | 'number'> = {
  format: 'string',
  argos_version: 'string',
  schema_version: 'number',
  key_version: 'number',
  created: 'string',
  db_entry: 'string',
  db_size: 'number',
  db_sha256: 'string',
  signing_key_id: 'string',
  signing_key: 'string',
};

/** The exact bytes the HMAC covers: every field but `hmac`, in a fixed order. */
function signedBytes(m: Omit<Manifest, 'hmac'>): string {
  const ordered: Record<string, unknown> = {};
  for (const k of Object.keys(MANIFEST_FIELDS)) ordered[k] = m[k as keyof typeof MANIFEST_FIELDS];
  return `${BACKUP_FORMAT}\n${JSON.stringify(ordered)}`;
}

export const manifestHmac = (key: Buffer, m: Omit<Manifest, 'hmac'>) => createHmac('sha256', key).update(signedBytes(m)).digest('hex');

/** Parses manifest.json strictly: known fields only, each of the right type. */
export function parseManifest(text: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new BackupRefused('manifest.json is not valid JSON');
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new BackupRefused('manifest.json is not a JSON object');
  const o = raw as Record<string, unknown>;
  const expected = [...Object.keys(MANIFEST_FIELDS), 'hmac'];
  const extra = Object.keys(o).filter((k) => !expected.includes(k));
  if (extra.length) throw new BackupRefused(`manifest.json has unknown fields: ${extra.map(safeName).join(', ')}`);
  for (const [k, t] of Object.entries({ ...MANIFEST_FIELDS, hmac: 'string' })) {
    if (typeof o[k] !== t) throw new BackupRefused(`manifest.json: field "${k}" is missing or not a ${t}`);
  }
  const m = o as unknown as Manifest;
  if (m.format !== BACKUP_FORMAT) throw new BackupRefused(`manifest.json: unsupported format "${safeName(m.format)}" (this Argos reads ${BACKUP_FORMAT})`);
  if (m.db_entry !== DB_ENTRY) throw new BackupRefused('manifest.json: unexpected database entry name');
  if (!/^[0-9a-f]{64}$/.test(m.db_sha256) || !/^[0-9a-f]{64}$/.test(m.hmac) || !/^[0-9a-f]{16}$/.test(m.signing_key_id)) {
    throw new BackupRefused('manifest.json: malformed hash, HMAC or key id');
  }
  if (!Number.isSafeInteger(m.db_size) || m.db_size < 0 || !Number.isSafeInteger(m.schema_version) || !Number.isSafeInteger(m.key_version)) {
    throw new BackupRefused('manifest.json: malformed number');
  }
  return m;
}

// ---------------------------------------------------------------------------------------------- writing archives

async function sha256File(file: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of fs.createReadStream(file)) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

/** Writes a .tar.gz with the manifest and the database file (mode 0600, created exclusively). Returns the archive's SHA-256 and size. */
export async function writeArchive(out: string, manifestText: string, dbFile: string, dbSize: number): Promise<{ sha256: string; size: number }> {
  const manifest = Buffer.from(manifestText, 'utf8');
  async function* entries(): AsyncGenerator<Buffer> {
    yield tarHeader({ name: MANIFEST_ENTRY, size: manifest.length });
    yield manifest;
    yield tarPadding(manifest.length);
    yield tarHeader({ name: DB_ENTRY, size: dbSize });
    let written = 0;
    for await (const c of fs.createReadStream(dbFile)) {
      written += (c as Buffer).length;
      yield c as Buffer;
    }
    if (written !== dbSize) throw new Error('the database snapshot changed while it was archived');
    yield tarPadding(dbSize);
    yield tarEnd();
  }
  const fd = fs.openSync(out, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  const hash = createHash('sha256');
  let size = 0;
  try {
    await pipeline(
      Readable.from(entries()),
      zlib.createGzip({ level: 6 }),
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          size += chunk.length;
          fs.write(fd, chunk, 0, chunk.length, null, (err) => cb(err));
        },
      }),
    );
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(out, 0o600);
  return { sha256: hash.digest('hex'), size };
}

export interface BackupInfo {
  name: string;
  file: string;
  kind: BackupKind;
  size: number;
  createdAt: number;
  dbSha256: string;
  archiveSha256: string;
  schemaVersion: number;
}

let exclusive: Promise<unknown> = Promise.resolve();
/** Backups and restores of one process run one at a time. */
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const p = exclusive.then(fn, fn);
  exclusive = p.catch(() => undefined);
  return p;
}

/** Makes a backup now: snapshot, manifest, signed archive; recorded in `backups` and audited (`backup.create`). */
export function createBackup(ctx: BackupContext, opts: { kind: BackupKind; actor: Actor; now?: number }): Promise<BackupInfo> {
  return serial(() => createBackupNow(ctx, opts));
}

async function createBackupNow(ctx: BackupContext, opts: { kind: BackupKind; actor: Actor; now?: number }): Promise<BackupInfo> {
  const { db, vault, dataDir } = ctx;
  const dir = ensureBackupsDir(dataDir);
  const signingKey = await ensureSigningKey(db, vault, opts.actor);
  const wrapped = (await wrappedSigningKey(db))!;
  const createdAt = opts.now ?? Date.now();
  const name = `argos-backup-${stamp(createdAt)}-${opts.kind}-${randomBytes(3).toString('hex')}.tar.gz`;
  const snapshot = path.join(dir, `.snapshot-${randomBytes(8).toString('hex')}.db`);
  const partial = path.join(dir, `.partial-${randomBytes(8).toString('hex')}.tar.gz`);
  const file = path.join(dir, name);
  try {
    await db.vacuumInto(snapshot);
    fs.chmodSync(snapshot, 0o600);
    const snap = await sha256File(snapshot);
    const schema = await schemaVersion(db);
    const body: Omit<Manifest, 'hmac'> = {
      format: BACKUP_FORMAT,
      argos_version: ARGOS_VERSION,
      schema_version: schema,
      key_version: vault.keyVersion,
      created: new Date(createdAt).toISOString(),
      db_entry: DB_ENTRY,
      db_size: snap.size,
      db_sha256: snap.sha256,
      signing_key_id: signingKeyId(signingKey),
      signing_key: wrapped,
    };
    const manifest: Manifest = { ...body, hmac: manifestHmac(signingKey, body) };
    const archive = await writeArchive(partial, JSON.stringify(manifest, null, 2) + '\n', snapshot, snap.size);
    fs.renameSync(partial, file);
    const info: BackupInfo = {
      name,
      file,
      kind: opts.kind,
      size: archive.size,
      createdAt,
      dbSha256: snap.sha256,
      archiveSha256: archive.sha256,
      schemaVersion: schema,
    };
    await mutate(db, opts.actor, async (tx) => {
      await tx.run('INSERT INTO backups (name, kind, db_sha256, archive_sha256, size, schema_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [
        name,
        opts.kind,
        snap.sha256,
        archive.sha256,
        archive.size,
        schema,
        createdAt,
      ]);
      return { result: undefined, audit: { action: 'backup.create', target: name, details: { kind: opts.kind, size: archive.size, db_sha256: snap.sha256 } } };
    });
    return info;
  } finally {
    fs.rmSync(snapshot, { force: true });
    fs.rmSync(partial, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------- listing and retention

export interface BackupListing {
  name: string;
  file: string;
  kind: BackupKind;
  size: number;
  createdAt: number;
  /** The SHA-256 values recorded in this database when the backup was made (null: not made by this database). */
  recorded: { dbSha256: string; archiveSha256: string } | null;
}

const createdFromName = (stampText: string) => Date.parse(stampText.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));

/** Backup files in the backups folder (regular files with Argos names only), newest first. */
export async function listBackups(ctx: { db: Queryable; dataDir: string }): Promise<BackupListing[]> {
  const dir = backupsDir(ctx.dataDir);
  if (!fs.existsSync(dir)) return [];
  const rows = await ctx.db.all<{ name: string; kind: BackupKind; db_sha256: string; archive_sha256: string; created_at: number }>(
    'SELECT name, kind, db_sha256, archive_sha256, created_at FROM backups',
  );
  const recorded = new Map(rows.map((r) => [r.name, r]));
  const out: BackupListing[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = BACKUP_NAME.exec(name);
    if (!m) continue;
    const st = fs.lstatSync(path.join(dir, name));
    if (!st.isFile()) continue;
    const r = recorded.get(name);
    out.push({
      name,
      file: path.join(dir, name),
      kind: m[2] as BackupKind,
      size: st.size,
      createdAt: r?.created_at ?? createdFromName(m[1]!),
      recorded: r ? { dbSha256: r.db_sha256, archiveSha256: r.archive_sha256 } : null,
    });
  }
  return out.sort((a, b) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : -1));
}

/** Retention: deletes all but the newest `keep` backups (at least one is always kept). Audited as `backup.delete`. */
export async function pruneBackups(ctx: { db: Database; dataDir: string }, keep: number, actor: Actor = SYSTEM_ACTOR, now = Date.now()): Promise<string[]> {
  const all = await listBackups(ctx);
  const doomed = all.slice(Math.max(1, Math.floor(keep)));
  if (!doomed.length) return [];
  for (const b of doomed) fs.rmSync(b.file, { force: true });
  await mutate(ctx.db, actor, async (tx) => {
    for (const b of doomed) await tx.run('UPDATE backups SET deleted_at = ? WHERE name = ?', [now, b.name]);
    return {
      result: undefined,
      audit: {
        action: 'backup.delete',
        target: 'backups',
        details: { deleted: doomed.map((b) => b.name), kept: Math.max(1, Math.floor(keep)), reason: 'retention' },
      },
    };
  });
  return doomed.map((b) => b.name);
}

export const SCHEDULE_MS: Record<string, number> = { hourly: 3_600_000, daily: 86_400_000, weekly: 7 * 86_400_000 };

/** The scheduled job: makes a backup when the last scheduled one is older than the schedule, then applies retention. */
export async function runScheduledBackup(ctx: BackupContext, schedule: string, keep: number, now = Date.now()): Promise<BackupInfo | null> {
  const every = SCHEDULE_MS[schedule];
  if (!every) return null;
  const last = (await ctx.db.get<{ t: number | null }>("SELECT max(created_at) AS t FROM backups WHERE kind = 'scheduled'"))?.t ?? null;
  if (last !== null && now - last < every - 60_000) return null;
  const info = await createBackup(ctx, { kind: 'scheduled', actor: SYSTEM_ACTOR, now });
  await pruneBackups(ctx, keep, SYSTEM_ACTOR, now);
  return info;
}

/**
 * A backup named in the backups folder, or (for the CLI) a path to an archive anywhere. Names from the panel or
 * API must be plain Argos backup names, so they cannot point outside the folder.
 */
export function resolveBackup(dataDir: string, nameOrPath: string, allowPath: boolean): string {
  if (BACKUP_NAME.test(nameOrPath)) return path.join(backupsDir(dataDir), nameOrPath);
  if (!allowPath) throw new BackupRefused(`"${safeName(nameOrPath)}" is not the name of an Argos backup`, 400);
  return path.resolve(nameOrPath);
}

// ---------------------------------------------------------------------------------------------- reading archives

interface Opened {
  fd: number;
  size: number;
}

function openArchive(file: string, limits: BackupLimits): Opened {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new BackupRefused(`no such backup file: ${safeName(path.basename(file))}`, 404);
    if (code === 'ELOOP') throw new BackupRefused('the backup path is a symbolic link; give the real file');
    throw new BackupRefused(`cannot open the backup file (${code ?? 'error'})`);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new BackupRefused('the backup path is not a regular file');
  }
  if (st.size > limits.archiveBytes) {
    fs.closeSync(fd);
    throw new BackupRefused(`the archive is ${st.size} bytes, more than the ${limits.archiveBytes}-byte limit`);
  }
  return { fd, size: st.size };
}

/** Decompressed chunks of the archive, with the compressed bytes hashed and the decompressed total capped. */
async function* inflate(o: Opened, limits: BackupLimits, archiveHash: ReturnType<typeof createHash> | null): AsyncGenerator<Buffer> {
  const cap = Math.min(limits.inflatedBytes, Math.max(limits.inflateAllowance, limits.ratio * o.size));
  // Read through our own descriptor from offset 0 (a stream over the fd would close it when destroyed).
  async function* raw(): AsyncGenerator<Buffer> {
    let pos = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(256 * 1024);
      const { bytesRead } = await new Promise<{ bytesRead: number }>((resolve, reject) =>
        fs.read(o.fd, buf, 0, buf.length, pos, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead }))),
      );
      if (bytesRead === 0) return;
      pos += bytesRead;
      const chunk = buf.subarray(0, bytesRead);
      archiveHash?.update(chunk);
      yield chunk;
    }
  }
  const src = Readable.from(raw());
  const gunzip = zlib.createGunzip();
  src.on('error', (e) => gunzip.destroy(e));
  src.pipe(gunzip);
  let total = 0;
  try {
    for await (const chunk of gunzip) {
      total += (chunk as Buffer).length;
      if (total > cap)
        throw new BackupRefused(`the archive decompresses to more than ${cap} bytes (${o.size} compressed): refusing a possible compression bomb`);
      yield chunk as Buffer;
    }
  } catch (e) {
    if (e instanceof BackupRefused || e instanceof TarError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    throw new BackupRefused(`the archive is not a valid gzip file (truncated or corrupt: ${msg})`);
  } finally {
    src.unpipe(gunzip);
    src.destroy();
    gunzip.destroy();
  }
}

interface Scanned {
  manifestText: string;
  dbSha256: string;
  dbSize: number;
  archiveSha256: string;
}

/**
 * Reads the whole archive once, writing nothing unless `extractTo` is given: exactly manifest.json then argos.db,
 * regular files within their size limits. With `extractTo`, writes those two entries there (exclusively, 0600).
 */
async function scanArchive(o: Opened, limits: BackupLimits, extractTo: string | null): Promise<Scanned> {
  const seen: string[] = [];
  const manifestChunks: Buffer[] = [];
  const dbHash = createHash('sha256');
  const archiveHash = createHash('sha256');
  let dbSize = 0;
  const open: number[] = [];
  const onEntry = (h: { name: string; size: number }): EntrySink => {
    if (seen.includes(h.name)) throw new BackupRefused(`the archive has a duplicate entry "${safeName(h.name)}"`);
    const expected = [MANIFEST_ENTRY, DB_ENTRY][seen.length];
    if (h.name !== MANIFEST_ENTRY && h.name !== DB_ENTRY)
      throw new BackupRefused(`the archive has an unexpected entry "${safeName(h.name)}" (only ${MANIFEST_ENTRY} and ${DB_ENTRY} belong in a backup)`);
    if (h.name !== expected)
      throw new BackupRefused(`the archive's entries are out of order ("${safeName(h.name)}" where ${expected ?? 'the end'} was expected)`);
    seen.push(h.name);
    const limit = h.name === MANIFEST_ENTRY ? limits.manifestBytes : limits.dbBytes;
    if (h.size > limit) throw new BackupRefused(`entry "${h.name}" is ${h.size} bytes, over the ${limit}-byte limit`);
    const fd = extractTo
      ? fs.openSync(path.join(extractTo, h.name), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600)
      : null;
    if (fd !== null) open.push(fd);
    return {
      write(chunk) {
        if (h.name === MANIFEST_ENTRY) manifestChunks.push(Buffer.from(chunk));
        else {
          dbHash.update(chunk);
          dbSize += chunk.length;
        }
        if (fd !== null) fs.writeSync(fd, chunk);
      },
      end() {
        if (fd !== null) {
          fs.fsyncSync(fd);
          fs.closeSync(open.splice(open.indexOf(fd), 1)[0]!);
        }
      },
    };
  };
  try {
    await readTar(inflate(o, limits, archiveHash), onEntry);
  } catch (e) {
    if (e instanceof TarError) throw new BackupRefused(`the archive is malformed: ${e.message}`);
    throw e;
  } finally {
    for (const fd of open) fs.closeSync(fd);
  }
  if (seen.length !== 2) throw new BackupRefused(`the archive lacks ${seen.includes(MANIFEST_ENTRY) ? DB_ENTRY : MANIFEST_ENTRY}`);
  return { manifestText: Buffer.concat(manifestChunks).toString('utf8'), dbSha256: dbHash.digest('hex'), dbSize, archiveSha256: archiveHash.digest('hex') };
}

/** Tries to unwrap a manifest's signing key with a master key at the version its prefix names. */
function unwrapSigningKey(wrapped: string, masterKey: Buffer): Buffer | null {
  const m = /^k(\d{1,6})\./.exec(wrapped);
  if (!m) return null;
  try {
    return Buffer.from(new Vault(masterKey, Number(m[1])).decrypt(wrapped, SIGNING_KEY_LOC), 'base64url');
  } catch (e) {
    if (e instanceof DecryptError) return null;
    throw e;
  }
}

export interface VerifyResult {
  ok: true;
  name: string;
  manifest: Omit<Manifest, 'signing_key' | 'hmac'>;
  archiveSha256: string;
  size: number;
  /** Which key verified the HMAC. */
  signedBy: 'this installation' | 'the wrapped key (same master key)' | 'the wrapped key (the backup master key)';
  /** Whether this database recorded the backup when it was made. */
  recorded: boolean;
}

async function checkAuthenticity(ctx: BackupContext, file: string, o: Opened, scanned: Scanned, backupMasterKey: Buffer | null): Promise<VerifyResult> {
  const manifest = parseManifest(scanned.manifestText);
  const live = await readSigningKey(ctx.db, ctx.vault);
  let key: Buffer | null = null;
  let signedBy: VerifyResult['signedBy'] = 'this installation';
  if (live && signingKeyId(live) === manifest.signing_key_id) key = live;
  if (!key) {
    const k = unwrapSigningKey(manifest.signing_key, ctx.masterKey);
    if (k && signingKeyId(k) === manifest.signing_key_id) [key, signedBy] = [k, 'the wrapped key (same master key)'];
  }
  if (!key && backupMasterKey) {
    const k = unwrapSigningKey(manifest.signing_key, backupMasterKey);
    if (k && signingKeyId(k) === manifest.signing_key_id) [key, signedBy] = [k, 'the wrapped key (the backup master key)'];
  }
  if (!key) {
    throw new BackupRefused(
      'the backup is signed with a key this installation does not have (made by another Argos, or under another master key: ' +
        'set ARGOS_BACKUP_MASTER_KEY to the master key it was made with)',
    );
  }
  const { hmac: mac, ...body } = manifest;
  const expect = Buffer.from(manifestHmac(key, body), 'hex');
  if (!timingSafeEqual(expect, Buffer.from(mac, 'hex'))) throw new BackupRefused('the manifest HMAC does not verify: the archive was altered or forged');
  if (scanned.dbSize !== manifest.db_size || scanned.dbSha256 !== manifest.db_sha256) {
    throw new BackupRefused("the database inside the archive does not match the signed manifest's SHA-256: it was swapped or altered");
  }
  const name = path.basename(file);
  const row = await ctx.db.get<{ db_sha256: string; archive_sha256: string }>('SELECT db_sha256, archive_sha256 FROM backups WHERE name = ?', [name]);
  if (row && (row.db_sha256 !== manifest.db_sha256 || row.archive_sha256 !== scanned.archiveSha256)) {
    throw new BackupRefused('the archive differs from the SHA-256 recorded in this database when it was made');
  }
  const { signing_key: _wrapped, ...shown } = body;
  return { ok: true, name, manifest: shown, archiveSha256: scanned.archiveSha256, size: o.size, signedBy, recorded: !!row };
}

/** Checks a backup's integrity and authenticity without extracting anything. Throws BackupRefused with the reason. */
export async function verifyBackup(
  ctx: BackupContext,
  file: string,
  opts: { backupMasterKey?: Buffer | null; limits?: BackupLimits } = {},
): Promise<VerifyResult> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const o = openArchive(file, limits);
  try {
    const scanned = await scanArchive(o, limits, null);
    return await checkAuthenticity(ctx, file, o, scanned, opts.backupMasterKey ?? null);
  } finally {
    fs.closeSync(o.fd);
  }
}

// ---------------------------------------------------------------------------------------------- restore

export interface RestoreResult {
  restored: string;
  manifest: VerifyResult['manifest'];
  migratedFrom: number | null;
  safetyBackup: string;
  restoreEpoch: number;
  /** Entries of the live audit trail that the restore replaced (their head hash is kept in the restore's audit entry). */
  replacedAuditEntries: number;
}

interface CopyFacts {
  schema: number;
  keyVersion: number;
  sourceVault: Vault;
}

/** Read-only checks of the extracted database: integrity, Argos schema, master key, page size. */
async function inspectExtracted(ctx: BackupContext, dbFile: string, manifest: Manifest, backupMasterKey: Buffer | null): Promise<CopyFacts> {
  let ro: ReadonlyDatabase;
  try {
    ro = await ReadonlyDatabase.open(dbFile);
  } catch {
    throw new BackupRefused('the database in the archive cannot be opened');
  }
  try {
    let integrity: Array<{ integrity_check: string }>;
    try {
      integrity = await ro.all<{ integrity_check: string }>('PRAGMA integrity_check');
    } catch (e) {
      throw new BackupRefused(`the file in the archive is not a usable SQLite database (${e instanceof Error ? e.message : String(e)})`);
    }
    if (integrity.length !== 1 || integrity[0]!.integrity_check !== 'ok') {
      throw new BackupRefused(
        `the database in the archive fails the SQLite integrity check: ${integrity
          .slice(0, 3)
          .map((r) => r.integrity_check)
          .join('; ')}`,
      );
    }
    const tables = new Set((await ro.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")).map((r) => r.name));
    if (!tables.has('schema_migrations') || !tables.has('meta') || !tables.has('secrets') || !tables.has('users'))
      throw new BackupRefused('the database in the archive is not an Argos database');
    const schema = (await ro.get<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations'))?.v ?? 0;
    if (schema > SCHEMA_VERSION)
      throw new BackupRefused(`the backup was made by a newer Argos (schema ${schema}; this Argos knows ${SCHEMA_VERSION}): upgrade Argos first`);
    if (schema < 1) throw new BackupRefused('the database in the archive has no schema version');
    if (schema !== manifest.schema_version) throw new BackupRefused(`the manifest says schema ${manifest.schema_version} but the database is at ${schema}`);
    const kv = await ro.get<{ value: string }>("SELECT value FROM meta WHERE key = 'key_version'");
    const keyVersion = kv ? Number(kv.value) : 1;
    const check = await ro.get<{ value: string }>("SELECT value FROM meta WHERE key = 'key_check'");
    if (!check) throw new BackupRefused('the database in the archive has no master-key check value');
    const opens = (key: Buffer) => {
      try {
        const v = new Vault(key, keyVersion);
        return v.decrypt(check.value, KEY_CHECK) === KEY_CHECK_PLAINTEXT ? v : null;
      } catch {
        return null;
      }
    };
    const sourceVault = opens(ctx.masterKey) ?? (backupMasterKey ? opens(backupMasterKey) : null);
    if (!sourceVault) {
      throw new BackupRefused(
        `the backup's secrets are encrypted under another master key (key version ${keyVersion}; the live database is at ${ctx.vault.keyVersion}). ` +
          'Restore it from the CLI with the key it was made with: ARGOS_BACKUP_MASTER_KEY=<that key> argos backup restore <file> --yes',
      );
    }
    const pageLive = (await ctx.db.get<{ page_size: number }>('PRAGMA page_size'))?.page_size;
    const pageCopy = (await ro.get<{ page_size: number }>('PRAGMA page_size'))?.page_size;
    if (pageLive !== pageCopy) throw new BackupRefused(`the backup's page size (${pageCopy}) differs from the live database's (${pageLive})`);
    return { schema, keyVersion, sourceVault };
  } finally {
    await ro.close();
  }
}

const SESSION_COLS = [
  'id',
  'token_hash',
  'kind',
  'user_id',
  'factors',
  'auth_method',
  'remember',
  'created_at',
  'last_seen_at',
  'expires_at',
  'idle_timeout_s',
  'ip',
  'user_agent',
  'country',
  'csrf_secret',
  'reauth_at',
  'revoked_at',
] as const;
const TOKEN_COLS = ['id', 'user_id', 'name', 'token_hash', 'hosts', 'admin_scope', 'expires_at', 'last_used_at', 'created_at', 'revoked_at'] as const;
const BACKUP_COLS = ['name', 'kind', 'db_sha256', 'archive_sha256', 'size', 'schema_version', 'created_at', 'deleted_at'] as const;
type AnyRow = Record<string, string | number | null>;
const values = (r: AnyRow, cols: readonly string[]) => cols.map((c) => r[c] ?? null);

/**
 * Brings the extracted copy in line with the live installation, inside the copy only: secrets re-encrypted to the
 * live key version, the live signing key and backup records kept, sessions and API tokens that are not alive in
 * the live database revoked (a restore never revives a revoked credential) and the live ones carried over for the
 * same users, TOTP replay steps kept, and every change counter moved past the live value.
 */
async function adjustCopy(ctx: BackupContext, copy: Database, facts: CopyFacts, now: number): Promise<void> {
  const live = ctx.db;
  const liveSessions = await live.all<AnyRow>('SELECT * FROM sessions WHERE revoked_at IS NULL AND expires_at > ?', [now]);
  const liveTokens = await live.all<AnyRow>('SELECT * FROM api_tokens WHERE revoked_at IS NULL');
  const liveUsers = await live.all<{ id: number; username: string; totp_last_step: number }>('SELECT id, username, totp_last_step FROM users');
  const liveBackups = await live.all<AnyRow>('SELECT * FROM backups');
  const liveCounters = await live.all<{ topic: string; counter: number }>('SELECT topic, counter FROM changes');
  const liveSigning = await wrappedSigningKey(live);

  await copy.write(async (tx) => {
    if (!(await sameVault(tx, ctx.vault))) await reencryptAll(tx, facts.sourceVault, ctx.vault);
    if (liveSigning) {
      await tx.run("INSERT INTO meta (key, value) VALUES ('backup_signing_key', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [liveSigning]);
    }
    for (const b of liveBackups) {
      await tx.run(
        'INSERT OR IGNORE INTO backups (name, kind, db_sha256, archive_sha256, size, schema_version, created_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        values(b, BACKUP_COLS),
      );
    }
    const copyUsers = new Map((await tx.all<{ id: number; username: string }>('SELECT id, username FROM users')).map((u) => [u.id, u.username]));
    const sameUser = (id: unknown) => typeof id === 'number' && copyUsers.get(id) === liveUsers.find((u) => u.id === id)?.username;
    const aliveSessions = new Set(liveSessions.map((s) => s.token_hash));
    for (const s of await tx.all<{ id: number; token_hash: string }>('SELECT id, token_hash FROM sessions WHERE revoked_at IS NULL')) {
      if (!aliveSessions.has(s.token_hash)) await tx.run('UPDATE sessions SET revoked_at = ? WHERE id = ?', [now, s.id]);
    }
    for (const s of liveSessions) {
      if (!sameUser(s.user_id)) continue;
      const exists = await tx.get('SELECT 1 FROM sessions WHERE token_hash = ?', [String(s.token_hash)]);
      if (exists) continue;
      await tx.run(
        'INSERT INTO sessions (token_hash, kind, user_id, factors, auth_method, remember, created_at, last_seen_at, expires_at, idle_timeout_s, ip, user_agent, country, csrf_secret, reauth_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        values(s, SESSION_COLS.slice(1)),
      );
    }
    const aliveTokens = new Set(liveTokens.map((t) => t.token_hash));
    for (const t of await tx.all<{ id: number; token_hash: string }>('SELECT id, token_hash FROM api_tokens WHERE revoked_at IS NULL')) {
      if (!aliveTokens.has(t.token_hash)) await tx.run('UPDATE api_tokens SET revoked_at = ? WHERE id = ?', [now, t.id]);
    }
    for (const t of liveTokens) {
      if (!sameUser(t.user_id)) continue;
      if (await tx.get('SELECT 1 FROM api_tokens WHERE token_hash = ?', [String(t.token_hash)])) continue;
      await tx.run(
        'INSERT INTO api_tokens (user_id, name, token_hash, hosts, admin_scope, expires_at, last_used_at, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        values(t, TOKEN_COLS.slice(1)),
      );
    }
    for (const u of liveUsers) {
      if (sameUser(u.id)) await tx.run('UPDATE users SET totp_last_step = max(totp_last_step, ?) WHERE id = ?', [u.totp_last_step, u.id]);
    }
    for (const c of liveCounters) {
      await tx.run(
        'INSERT INTO changes (topic, counter) VALUES (?, ?) ON CONFLICT (topic) DO UPDATE SET counter = max(changes.counter, excluded.counter - 1) + 1',
        [c.topic, c.counter + 1],
      );
    }
    await tx.run("INSERT INTO meta (key, value) VALUES ('restored_at', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [String(now)]);
  });
}

/** True when the copy's key-check value opens with the live vault (same key, same version): no re-encryption needed. */
async function sameVault(q: Queryable, vault: Vault): Promise<boolean> {
  const row = await q.get<{ value: string }>("SELECT value FROM meta WHERE key = 'key_check'");
  if (!row) return false;
  try {
    return vault.decrypt(row.value, KEY_CHECK) === KEY_CHECK_PLAINTEXT;
  } catch {
    return false;
  }
}

export interface RestoreOptions {
  actor: Actor;
  /** The master key the backup was made under, when it differs from the current one (ARGOS_BACKUP_MASTER_KEY). */
  backupMasterKey?: Buffer | null;
  limits?: BackupLimits;
  now?: number;
}

/**
 * Restores a backup into the live database (see the module comment). Throws BackupRefused, with the live database
 * untouched, for anything wrong with the archive; the temporary folder is always removed.
 */
export function restoreBackup(ctx: BackupContext, file: string, opts: RestoreOptions): Promise<RestoreResult> {
  return serial(() => restoreNow(ctx, file, opts));
}

async function restoreNow(ctx: BackupContext, file: string, opts: RestoreOptions): Promise<RestoreResult> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const now = opts.now ?? Date.now();
  const backupMasterKey = opts.backupMasterKey ?? null;
  const o = openArchive(file, limits);
  let tmp: string | null = null;
  try {
    // 1. Everything about the archive, before a single byte is written.
    const first = await scanArchive(o, limits, null);
    const verified = await checkAuthenticity(ctx, file, o, first, backupMasterKey);
    const manifest = parseManifest(first.manifestText);

    // 2. Extract the two entries into a fresh folder inside the data directory, and check them again.
    tmp = fs.mkdtempSync(path.join(ctx.dataDir, '.restore-'));
    fs.chmodSync(tmp, 0o700);
    const second = await scanArchive(o, limits, tmp);
    if (second.manifestText !== first.manifestText || second.dbSha256 !== manifest.db_sha256)
      throw new BackupRefused('the archive changed while it was being restored');
    const dbFile = path.join(tmp, DB_ENTRY);

    // 3. The database itself: integrity, schema, master key, page size (read-only).
    const facts = await inspectExtracted(ctx, dbFile, manifest, backupMasterKey);

    // 4. Adjust the copy (migrate an older schema, re-encrypt, keep revocations), then check it again.
    const copy = await Database.open(dbFile);
    let migratedFrom: number | null = null;
    try {
      if ((await migrate(copy)).length) migratedFrom = facts.schema;
      await adjustCopy(ctx, copy, facts, now);
      const quick = await copy.get<{ quick_check: string }>('PRAGMA quick_check');
      if (quick?.quick_check !== 'ok') throw new BackupRefused('the adjusted copy fails PRAGMA quick_check');
    } finally {
      await copy.close();
    }

    // 5. Safety backup of the live database, then the atomic copy into it.
    const safety = await createBackupNow(ctx, { kind: 'safety', actor: opts.actor, now });
    const replaced = await ctx.db.get<{ n: number; head: string | null }>(
      'SELECT count(*) AS n, (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1) AS head FROM audit_log',
    );
    try {
      await ctx.db.restoreFrom(dbFile);
    } catch (e) {
      throw new CommandError(
        `restore failed while copying into the live database, which is unchanged (${e instanceof Error ? e.message : String(e)}); safety backup: ${safety.name}`,
        500,
      );
    }

    // 6. Tell every process (restore epoch and change counters) and record it in the restored trail.
    const epoch = await ctx.db.write(async (tx) => {
      await tx.run("UPDATE changes SET counter = counter + 1 WHERE topic IN ('config', 'sessions', 'restore')");
      await tx.run('INSERT OR IGNORE INTO backups (name, kind, db_sha256, archive_sha256, size, schema_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [
        safety.name,
        safety.kind,
        safety.dbSha256,
        safety.archiveSha256,
        safety.size,
        safety.schemaVersion,
        safety.createdAt,
      ]);
      await appendAudit(
        tx,
        opts.actor,
        {
          action: 'backup.restore',
          target: verified.name,
          details: {
            created: manifest.created,
            db_sha256: manifest.db_sha256,
            schema_version: facts.schema,
            migrated: migratedFrom !== null,
            safety_backup: safety.name,
            replaced_audit_entries: replaced?.n ?? 0,
            replaced_audit_head: replaced?.head ?? null,
          },
        },
        Date.now(),
      );
      return (await tx.get<{ counter: number }>("SELECT counter FROM changes WHERE topic = 'restore'"))?.counter ?? 0;
    });
    return {
      restored: verified.name,
      manifest: verified.manifest,
      migratedFrom,
      safetyBackup: safety.name,
      restoreEpoch: epoch,
      replacedAuditEntries: replaced?.n ?? 0,
    };
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    fs.closeSync(o.fd);
  }
}
