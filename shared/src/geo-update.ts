/**
 * The country database updater: download (monthly, or on demand from the panel and `argos geo update`), gunzip
 * with size limits, validate (it opens, its metadata says country, well-known addresses answer), then an atomic
 * swap on disk (temp file in the same directory, fsync, rename, fsync the directory). The gatekeeper notices the
 * new file and hot-reloads it (GeoDb.watch). A failed update leaves the current file untouched; every outcome is
 * recorded in the `meta` table (shown by the panel and `argos geo info`) and in the audit log.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import type { Database } from './db/sqlite.ts';
import { recordEvent, SYSTEM_ACTOR, type Actor } from './audit.ts';
import { downloadedGeoFile, readerFromBuffer, sourceNoteFile } from './geo.ts';

const gunzip = promisify(zlib.gunzip);

export const DEFAULT_GEO_UPDATE_URL = 'https://download.db-ip.com/free/dbip-country-lite-{YYYY}-{MM}.mmdb.gz';
export const MAX_COMPRESSED_BYTES = 32 * 1024 * 1024;
export const MAX_DATABASE_BYTES = 64 * 1024 * 1024;

export class GeoUpdateError extends Error {
  constructor(
    message: string,
    readonly url: string | null,
  ) {
    super(message);
    this.name = 'GeoUpdateError';
  }
}

/** The URLs to try: the template for this month, then the previous month (DB-IP publishes early in the month). */
export function candidateUrls(template: string, now: Date): string[] {
  if (!/\{YYYY\}|\{MM\}/.test(template)) return [template];
  const fill = (d: Date) => template.replaceAll('{YYYY}', String(d.getUTCFullYear())).replaceAll('{MM}', String(d.getUTCMonth() + 1).padStart(2, '0'));
  const prev = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return [fill(now), fill(prev)];
}

export interface GeoDownloadOptions {
  dataDir: string;
  /** URL or template with {YYYY} and {MM}. */
  url: string;
  now?: Date;
  fetch?: typeof fetch;
  maxCompressedBytes?: number;
  maxBytes?: number;
  timeoutMs?: number;
}

export interface GeoDownloadResult {
  url: string;
  file: string;
  bytes: number;
  databaseType: string;
  buildEpoch: string;
}

async function readLimited(res: Response, limit: number, url: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw new GeoUpdateError(`download is ${declared} bytes, over the ${limit}-byte limit`, url);
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw new GeoUpdateError(`download exceeds the ${limit}-byte limit`, url);
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks, total);
}

/** Downloads, unpacks and validates a database (nothing is written). */
export async function fetchGeoDatabase(opts: GeoDownloadOptions): Promise<{ url: string; data: Buffer; databaseType: string; buildEpoch: string }> {
  const urls = candidateUrls(opts.url, opts.now ?? new Date());
  const maxCompressed = opts.maxCompressedBytes ?? MAX_COMPRESSED_BYTES;
  const maxBytes = opts.maxBytes ?? MAX_DATABASE_BYTES;
  let lastError: GeoUpdateError | null = null;
  for (const [i, url] of urls.entries()) {
    let res: Response;
    try {
      res = await (opts.fetch ?? fetch)(url, { redirect: 'follow', headers: { 'User-Agent': 'argos-geo-update' }, signal: AbortSignal.timeout(opts.timeoutMs ?? 120_000) });
    } catch (e) {
      throw new GeoUpdateError(`download failed: ${e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)}`, url);
    }
    if (res.status === 404 && i < urls.length - 1) {
      await res.body?.cancel().catch(() => undefined);
      lastError = new GeoUpdateError('HTTP 404', url);
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new GeoUpdateError(`download failed: HTTP ${res.status}${lastError ? ` (and ${lastError.url}: ${lastError.message})` : ''}`, url);
    }
    const raw = await readLimited(res, Math.max(maxCompressed, maxBytes), url);
    let data: Buffer;
    if (raw[0] === 0x1f && raw[1] === 0x8b) {
      if (raw.length > maxCompressed) throw new GeoUpdateError(`compressed download is over the ${maxCompressed}-byte limit`, url);
      try {
        data = await gunzip(raw, { maxOutputLength: maxBytes });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) throw new GeoUpdateError(`unpacked database is over the ${maxBytes}-byte limit`, url);
        throw new GeoUpdateError(`cannot gunzip the download (${e instanceof Error ? e.message : String(e)}): truncated or corrupt`, url);
      }
    } else {
      data = raw;
      if (data.length > maxBytes) throw new GeoUpdateError(`database is over the ${maxBytes}-byte limit`, url);
    }
    try {
      const reader = readerFromBuffer(data);
      return { url, data, databaseType: reader.metadata.databaseType, buildEpoch: reader.metadata.buildEpoch.toISOString() };
    } catch (e) {
      throw new GeoUpdateError(`downloaded file refused: ${e instanceof Error ? e.message : String(e)}`, url);
    }
  }
  throw lastError ?? new GeoUpdateError('no URL to download from', null);
}

/** Writes `data` to `file` atomically: temp file in the same directory, fsync, rename, fsync the directory. */
export function atomicWrite(file: string, data: Buffer | string): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', 0o644);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

/** Downloads, validates and installs a database as `<dataDir>/geo/country.mmdb`. Throws GeoUpdateError; the current file stays on failure. */
export async function downloadGeoDatabase(opts: GeoDownloadOptions): Promise<GeoDownloadResult> {
  const got = await fetchGeoDatabase(opts);
  const file = downloadedGeoFile(opts.dataDir);
  try {
    atomicWrite(sourceNoteFile(file), JSON.stringify({ url: got.url, downloadedAt: new Date().toISOString(), databaseType: got.databaseType, buildEpoch: got.buildEpoch }) + '\n');
    atomicWrite(file, got.data);
  } catch (e) {
    throw new GeoUpdateError(`cannot write ${file}: ${e instanceof Error ? e.message : String(e)}`, got.url);
  }
  return { url: got.url, file, bytes: got.data.length, databaseType: got.databaseType, buildEpoch: got.buildEpoch };
}

export interface GeoUpdateStatus {
  lastAttemptAt: number | null;
  lastUpdateAt: number | null;
  lastError: string | null;
  lastSource: string | null;
}

const META = {
  attempt: 'geo.last_attempt_at',
  update: 'geo.last_update_at',
  error: 'geo.last_error',
  source: 'geo.last_source',
} as const;

export async function geoUpdateStatus(db: Database): Promise<GeoUpdateStatus> {
  const rows = await db.all<{ key: string; value: string }>('SELECT key, value FROM meta WHERE key IN (?, ?, ?, ?)', [META.attempt, META.update, META.error, META.source]);
  const m = new Map(rows.map((r) => [r.key, r.value]));
  const num = (k: string) => (m.has(k) ? Number(m.get(k)) : null);
  return { lastAttemptAt: num(META.attempt), lastUpdateAt: num(META.update), lastError: m.get(META.error) || null, lastSource: m.get(META.source) || null };
}

async function setMeta(db: Database, values: Record<string, string>): Promise<void> {
  await db.write(async (tx) => {
    for (const [k, v] of Object.entries(values)) await tx.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [k, v]);
  });
}

export type GeoUpdateOutcome = ({ ok: true } & GeoDownloadResult) | { ok: false; error: string; url: string | null };

/** Runs one update and records it (meta + audit). Never throws for download/validation problems. */
export async function runGeoUpdate(db: Database, opts: GeoDownloadOptions & { actor?: Actor }): Promise<GeoUpdateOutcome> {
  const actor = opts.actor ?? SYSTEM_ACTOR;
  const now = (opts.now ?? new Date()).getTime();
  if (!opts.url.trim()) {
    const error = 'no download URL configured (setting geo.update_url)';
    await setMeta(db, { [META.attempt]: String(now), [META.error]: error });
    await recordEvent(db, actor, { action: 'geo.update.failed', target: '', details: { error } });
    return { ok: false, error, url: null };
  }
  try {
    const r = await downloadGeoDatabase(opts);
    await setMeta(db, { [META.attempt]: String(now), [META.update]: String(now), [META.error]: '', [META.source]: r.url });
    await recordEvent(db, actor, { action: 'geo.update', target: r.url, details: { database_type: r.databaseType, build_epoch: r.buildEpoch, bytes: r.bytes } });
    return { ok: true, ...r };
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    const url = e instanceof GeoUpdateError ? e.url : null;
    await setMeta(db, { [META.attempt]: String(now), [META.error]: error });
    await recordEvent(db, actor, { action: 'geo.update.failed', target: url ?? '', details: { error } });
    return { ok: false, error, url };
  }
}

export interface GeoScheduleOptions {
  db: Database;
  dataDir: string;
  /** Current settings (geo.auto_update, geo.update_url). */
  settings: () => { 'geo.auto_update': boolean; 'geo.update_url': string } | undefined;
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void };
  /** How often to check whether an update is due (default 6 h). */
  checkEveryMs?: number;
  /** An update is due when the last successful one is older than this (default 30 days). */
  maxAgeMs?: number;
  /** After a failure, wait at least this long before trying again (default 1 day). */
  retryAfterMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
  /** Called after each attempt (e.g. to notify the operator of a failure). */
  onResult?: (r: GeoUpdateOutcome) => void;
}

/** Runs the update monthly while `geo.auto_update` is on. Returns a stopper and a way to run a check now. */
export function scheduleGeoUpdates(o: GeoScheduleOptions): { stop(): void; checkNow(): Promise<GeoUpdateOutcome | null> } {
  const now = o.now ?? Date.now;
  let running: Promise<GeoUpdateOutcome | null> | null = null;
  const check = async (): Promise<GeoUpdateOutcome | null> => {
    const s = o.settings();
    if (!s || !s['geo.auto_update'] || !s['geo.update_url']) return null;
    const st = await geoUpdateStatus(o.db);
    const t = now();
    const due = st.lastUpdateAt === null || t - st.lastUpdateAt >= (o.maxAgeMs ?? 30 * 86_400_000);
    const backoff = st.lastError && st.lastAttemptAt !== null && t - st.lastAttemptAt < (o.retryAfterMs ?? 86_400_000);
    if (!due || backoff) return null;
    const r = await runGeoUpdate(o.db, { dataDir: o.dataDir, url: s['geo.update_url'], fetch: o.fetch, now: new Date(t) });
    if (r.ok) o.log?.info({ url: r.url, buildEpoch: r.buildEpoch }, 'geo database updated');
    else o.log?.warn({ url: r.url, err: r.error }, 'geo database update failed; keeping the current database');
    o.onResult?.(r);
    return r;
  };
  const checkNow = () => (running ??= check().finally(() => (running = null)));
  const timer = setInterval(() => void checkNow().catch((err) => o.log?.warn({ err: String(err) }, 'geo update check failed')), o.checkEveryMs ?? 6 * 3600_000);
  timer.unref();
  return { stop: () => clearInterval(timer), checkNow };
}
