/**
 * Traffic ingestion: tails Caddy's JSON access log like `tail -F` (follows rotation by inode, and truncation by
 * size), parses each line into an access-log row (path without its query string: it carries OIDC codes, states
 * and return URLs), and pushes it into a bounded channel that never blocks and drops (and counts) on saturation.
 * A flusher writes the channel in batches through the writer queue, together with the read position
 * (inode + offset, in `meta`), so a restart continues where it stopped; the very first start begins at the end.
 * Delivery is at most once: a crash between a read and its batch's commit loses those lines, never duplicates them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { Database } from '@argos/shared/db/sqlite';
import type { Logger } from '@argos/shared/log';
import { normalizeHost } from '@argos/shared/hostname';
import { normalizeIp } from '@argos/shared/net';
import { insertAccessEntries, type AccessEntry } from '@argos/shared/repos/access-log';

export const POSITION_KEY = 'traffic.position';

export interface IngestOptions {
  pollMs: number;
  flushMs: number;
  /** Capacity of the channel between the reader and the writer. */
  queueMax: number;
  /** Rows per write transaction. */
  batch: number;
  /** Bytes read per poll at most (keeps the event loop responsive on a backlog). */
  readBytes: number;
}

export interface IngestorDeps {
  db: Database;
  log: Logger;
  file: string;
  country?: (ip: string) => string | null;
  opts?: Partial<IngestOptions>;
}

/** One line of Caddy's JSON access log as an access-log row, or null when it is not an access entry. */
export function parseAccessLine(line: string, country?: (ip: string) => string | null): AccessEntry | null {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
  const r = j?.request as Record<string, unknown> | undefined;
  if (!r || typeof r !== 'object') return null;
  const rawHost = typeof r.host === 'string' ? r.host : '';
  const host = (rawHost && normalizeHost(rawHost)) || rawHost.toLowerCase().slice(0, 253) || '-';
  const uri = typeof r.uri === 'string' ? r.uri : '/';
  const p = uri.split(/[?#]/, 1)[0]!.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 500) || '/';
  const rawIp = typeof r.client_ip === 'string' && r.client_ip ? r.client_ip : typeof r.remote_ip === 'string' ? r.remote_ip : '';
  const ip = normalizeIp(rawIp) ?? (rawIp.slice(0, 64) || '-');
  const tsRaw = j.ts;
  const ts = typeof tsRaw === 'number' ? (tsRaw > 1e12 ? Math.round(tsRaw) : Math.round(tsRaw * 1000)) : typeof tsRaw === 'string' ? Date.parse(tsRaw) || Date.now() : Date.now();
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return {
    ts,
    host,
    method: (typeof r.method === 'string' ? r.method : '-').slice(0, 16).toUpperCase(),
    path: p,
    status: Math.trunc(num(j.status)),
    durationMs: Math.round(num(j.duration) * 1000 * 1000) / 1000,
    bytes: Math.trunc(num(j.size)),
    ip,
    country: ip !== '-' && country ? country(ip) : null,
  };
}

interface Position {
  ino: number;
  offset: number;
}

export class AccessLogIngestor {
  readonly opts: IngestOptions;
  /** Complete lines read. */
  lines = 0;
  /** Rows committed to the database. */
  ingested = 0;
  /** Rows dropped because the channel was full. */
  dropped = 0;
  /** Lines that were not access entries (or not JSON). */
  skipped = 0;
  /** Rotations followed. */
  rotations = 0;
  lastReadAt: number | null = null;
  lastError: string | null = null;

  private channel: AccessEntry[] = [];
  private fh: fs.promises.FileHandle | null = null;
  private pos: Position | null = null;
  private partial = '';
  private decoder = new StringDecoder('utf8');
  private readTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private reading: Promise<void> | null = null;
  private flushing: Promise<number> | null = null;
  private stopped = false;

  constructor(private readonly deps: IngestorDeps) {
    this.opts = { pollMs: 500, flushMs: 1000, queueMax: 20_000, batch: 2000, readBytes: 4 * 1024 * 1024, ...deps.opts };
  }

  get file(): string {
    return this.deps.file;
  }

  /** Rows waiting in the channel. */
  get depth(): number {
    return this.channel.length;
  }

  get position(): Readonly<Position> | null {
    return this.pos;
  }

  async start(): Promise<void> {
    fs.mkdirSync(path.dirname(this.deps.file), { recursive: true, mode: 0o750 });
    const saved = await this.deps.db.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [POSITION_KEY]);
    let pos: Position | null = null;
    try {
      const p = saved ? (JSON.parse(saved.value) as Position) : null;
      if (p && Number.isSafeInteger(p.ino) && Number.isSafeInteger(p.offset)) pos = p;
    } catch {
      pos = null;
    }
    await this.open(pos);
    await this.savePosition();
    this.readTimer = setInterval(() => void this.tick(), this.opts.pollMs);
    this.flushTimer = setInterval(() => void this.flush(), this.opts.flushMs);
    this.readTimer.unref();
    this.flushTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.readTimer) clearInterval(this.readTimer);
    if (this.flushTimer) clearInterval(this.flushTimer);
    await this.reading?.catch(() => undefined);
    await this.flush().catch(() => undefined);
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }

  /**
   * Opens the log. With a saved position: continue in the same file (same inode), or first finish the rotated
   * file if it is still in the directory. Without one (first start): begin at the end of the current file.
   */
  private async open(saved: Position | null): Promise<void> {
    const st = await fs.promises.stat(this.deps.file).catch(() => null);
    if (saved && st && st.ino !== saved.ino) {
      const rotated = await this.findByInode(saved.ino);
      if (rotated) {
        this.fh = await fs.promises.open(rotated, 'r');
        this.pos = { ino: saved.ino, offset: saved.offset };
        await this.drain();
        this.rotations++;
      }
      await this.closeCurrent();
    }
    if (!st) return;
    this.fh = await fs.promises.open(this.deps.file, 'r');
    const fst = await this.fh.stat();
    const offset = saved && saved.ino === fst.ino ? (saved.offset <= fst.size ? saved.offset : 0) : saved ? 0 : fst.size;
    this.pos = { ino: fst.ino, offset };
  }

  private async findByInode(ino: number): Promise<string | null> {
    const dir = path.dirname(this.deps.file);
    const base = path.basename(this.deps.file).replace(/\.log$/, '');
    for (const name of await fs.promises.readdir(dir).catch(() => [] as string[])) {
      if (!name.startsWith(base) || name.endsWith('.gz')) continue;
      const p = path.join(dir, name);
      const st = await fs.promises.stat(p).catch(() => null);
      if (st?.ino === ino) return p;
    }
    return null;
  }

  private async closeCurrent(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
    this.partial = '';
    this.decoder = new StringDecoder('utf8');
  }

  /** One poll: read what was appended; on rotation finish the old file through its open handle, then switch. */
  tick(): Promise<void> {
    if (this.reading) return this.reading;
    this.reading = this.readOnce()
      .catch((err) => {
        this.lastError = err instanceof Error ? err.message : String(err);
        this.deps.log.warn({ err: this.lastError, file: this.deps.file }, 'access log read failed');
      })
      .finally(() => (this.reading = null));
    return this.reading;
  }

  private async readOnce(): Promise<void> {
    if (this.stopped) return;
    const st = await fs.promises.stat(this.deps.file).catch(() => null);
    if (!this.fh) {
      if (!st) return;
      this.fh = await fs.promises.open(this.deps.file, 'r');
      const fst = await this.fh.stat();
      this.pos = { ino: fst.ino, offset: 0 };
    }
    if (st && st.ino !== this.pos!.ino) {
      // Rotated: the old file (renamed, maybe already deleted) is still readable through our handle.
      await this.drain();
      await this.closeCurrent();
      this.rotations++;
      this.fh = await fs.promises.open(this.deps.file, 'r');
      const fst = await this.fh.stat();
      this.pos = { ino: fst.ino, offset: 0 };
    }
    const size = (await this.fh.stat()).size;
    if (size < this.pos!.offset) {
      // Truncated in place (copytruncate): start over.
      this.pos!.offset = 0;
      this.partial = '';
      this.decoder = new StringDecoder('utf8');
    }
    await this.read(this.opts.readBytes);
  }

  /** Reads the current handle to its end. */
  private async drain(): Promise<void> {
    while ((await this.read(this.opts.readBytes)) > 0);
  }

  /** Reads up to `limit` bytes from the position; returns how many were read. */
  private async read(limit: number): Promise<number> {
    if (!this.fh || !this.pos) return 0;
    let total = 0;
    const buf = Buffer.allocUnsafe(Math.min(limit, 1024 * 1024));
    while (total < limit) {
      const { bytesRead } = await this.fh.read(buf, 0, Math.min(buf.length, limit - total), this.pos.offset);
      if (bytesRead === 0) break;
      this.pos.offset += bytesRead;
      total += bytesRead;
      this.consume(this.decoder.write(buf.subarray(0, bytesRead)));
    }
    if (total) this.lastReadAt = Date.now();
    return total;
  }

  private consume(text: string): void {
    const chunk = this.partial + text;
    const lines = chunk.split('\n');
    this.partial = lines.pop() ?? '';
    if (this.partial.length > 256 * 1024) this.partial = ''; // a runaway line is not an access entry
    for (const line of lines) {
      if (!line.trim()) continue;
      this.lines++;
      const entry = parseAccessLine(line, this.deps.country);
      if (!entry) {
        this.skipped++;
        continue;
      }
      this.push(entry);
    }
  }

  /** Non-blocking: a full channel drops the row and counts it. */
  push(entry: AccessEntry): boolean {
    if (this.channel.length >= this.opts.queueMax) {
      this.dropped++;
      return false;
    }
    this.channel.push(entry);
    return true;
  }

  /** Writes what the channel holds in batches, with the read position; returns the rows written. */
  flush(): Promise<number> {
    if (this.flushing) return this.flushing;
    this.flushing = this.flushOnce().finally(() => (this.flushing = null));
    return this.flushing;
  }

  private async flushOnce(): Promise<number> {
    let written = 0;
    while (this.channel.length) {
      const batch = this.channel.splice(0, this.opts.batch);
      const pos = this.channel.length === 0 && this.pos ? { ...this.pos } : null;
      try {
        await this.deps.db.write(async (tx) => {
          await insertAccessEntries(tx, batch);
          if (pos) await tx.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [POSITION_KEY, JSON.stringify(pos)]);
        });
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        this.dropped += batch.length;
        this.deps.log.error({ err: this.lastError, rows: batch.length }, 'access log batch could not be written');
        continue;
      }
      this.ingested += batch.length;
      written += batch.length;
    }
    return written;
  }

  private async savePosition(): Promise<void> {
    if (!this.pos) return;
    await this.deps.db.write((tx) =>
      tx.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [POSITION_KEY, JSON.stringify(this.pos)]),
    );
  }
}
