/**
 * The only module that imports the SQLite driver (enforced by the linter).
 *
 * One process opens two connections: a reader for queries, and a writer owned by the
 * writer queue. Every write passes through the queue, one transaction at a time,
 * started with BEGIN IMMEDIATE so read-then-write never hits SQLITE_BUSY upgrades.
 */
import sqlite3 from 'sqlite3';
import fs from 'node:fs';

export type Param = string | number | bigint | null | Buffer;
export type Row = Record<string, unknown>;

/** Read access: what repositories' get/list functions take. */
export interface Queryable {
  get<T = Row>(sql: string, params?: readonly Param[]): Promise<T | undefined>;
  all<T = Row>(sql: string, params?: readonly Param[]): Promise<T[]>;
}

/** Write access inside one transaction: what repositories' create/update/delete functions take. */
export interface Tx extends Queryable {
  run(sql: string, params?: readonly Param[]): Promise<{ lastID: number; changes: number }>;
  /** Runs a multi-statement script without parameters (migrations only). */
  exec(sql: string): Promise<void>;
}

class Conn implements Tx {
  constructor(readonly raw: sqlite3.Database) {}

  static open(file: string, readonly = false): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const mode = readonly ? sqlite3.OPEN_READONLY : sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE;
      const db = new sqlite3.Database(file, mode, (err) => (err ? reject(err) : resolve(new Conn(db))));
    });
  }

  get<T = Row>(sql: string, params: readonly Param[] = []): Promise<T | undefined> {
    return new Promise((resolve, reject) =>
      this.raw.get(sql, params as Param[], (err: Error | null, row: T) => (err ? reject(err) : resolve(row))),
    );
  }

  all<T = Row>(sql: string, params: readonly Param[] = []): Promise<T[]> {
    return new Promise((resolve, reject) =>
      this.raw.all(sql, params as Param[], (err: Error | null, rows: T[]) => (err ? reject(err) : resolve(rows))),
    );
  }

  run(sql: string, params: readonly Param[] = []): Promise<{ lastID: number; changes: number }> {
    return new Promise((resolve, reject) =>
      this.raw.run(sql, params as Param[], function (this: sqlite3.RunResult, err: Error | null) {
        if (err) reject(err);
        else resolve({ lastID: this.lastID, changes: this.changes });
      }),
    );
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => this.raw.exec(sql, (err) => (err ? reject(err) : resolve())));
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => this.raw.close((err) => (err ? reject(err) : resolve())));
  }
}

export interface OpenOptions {
  busyTimeoutMs?: number;
}

/** One process's handle on the Argos database: a reader and a single-writer queue. */
export class Database implements Queryable {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;
  private closed = false;

  private constructor(
    readonly file: string,
    private reader: Conn,
    private writer: Conn,
  ) {}

  static async open(file: string, opts: OpenOptions = {}): Promise<Database> {
    const existed = fs.existsSync(file);
    const writer = await Conn.open(file);
    if (!existed) fs.chmodSync(file, 0o600);
    await configure(writer, opts.busyTimeoutMs ?? 5000);
    await writer.exec('PRAGMA journal_mode = WAL');
    const reader = await Conn.open(file);
    await configure(reader, opts.busyTimeoutMs ?? 5000);
    return new Database(file, reader, writer);
  }

  get<T = Row>(sql: string, params?: readonly Param[]): Promise<T | undefined> {
    return this.reader.get<T>(sql, params);
  }

  all<T = Row>(sql: string, params?: readonly Param[]): Promise<T[]> {
    return this.reader.all<T>(sql, params);
  }

  /** Writes waiting in this process's queue (including the running one). */
  get queueDepth(): number {
    return this.pending;
  }

  /**
   * Runs `fn` as one transaction (BEGIN IMMEDIATE … COMMIT) on the writer connection, after every
   * earlier write of this process. Rolls back and rethrows on error.
   */
  write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.enqueue(async () => {
      await this.writer.run('BEGIN IMMEDIATE');
      try {
        const result = await fn(this.writer);
        await this.writer.run('COMMIT');
        return result;
      } catch (e) {
        await this.writer.run('ROLLBACK').catch(() => undefined);
        throw e;
      }
    });
  }

  /**
   * Runs one statement on its own (SQLite's implicit transaction), after every earlier write of this process.
   * The write lock is held only while SQLite executes the statement on the driver's thread, never across turns of
   * this process's event loop as a BEGIN … COMMIT spanning three driver calls is: for a busy process's bulk
   * inserts (the gatekeeper's decision log), so that other processes' writes are not kept waiting.
   */
  writeStatement(sql: string, params?: readonly Param[]): Promise<{ lastID: number; changes: number }> {
    return this.enqueue(() => this.writer.run(sql, params));
  }

  private enqueue<T>(run: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('database is closed'));
    this.pending++;
    const p = this.tail.then(run, run);
    this.tail = p.then(
      () => (this.pending--, undefined),
      () => (this.pending--, undefined),
    );
    return p;
  }

  /**
   * The one string-built SQL statement in Argos: VACUUM INTO a path Argos generated itself.
   * The path is checked to contain no quote, so it cannot break out of the literal.
   */
  async vacuumInto(generatedPath: string): Promise<void> {
    if (/['\0]/.test(generatedPath)) throw new Error('refusing VACUUM INTO a path with a quote or NUL');
    await this.tail;
    await this.writer.run(`VACUUM INTO '${generatedPath}'`);
  }

  /**
   * Replaces the whole content of this database with another SQLite file's, atomically, through SQLite's
   * online backup API on the writer connection (queued after every earlier write of this process). Other
   * connections, in this process and in others, keep their handles and see the new content at once when
   * the copy commits: no file is renamed under them, the WAL stays consistent, and a write acknowledged
   * after the copy lands in the new content. Both files must use the same page size.
   */
  restoreFrom(sourceFile: string): Promise<void> {
    return this.enqueue(() => copyWithBackupApi(this.writer, sourceFile));
  }

  /** PRAGMA data_version of the reader: changes whenever another connection commits. */
  async dataVersion(): Promise<number> {
    const row = await this.reader.get<{ data_version: number }>('PRAGMA data_version');
    return row?.data_version ?? 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    await this.reader.close();
    await this.writer.close();
  }
}

/** The parts of node-sqlite3's Backup object Argos uses (the driver's typings omit it). */
interface DriverBackup {
  step(pages: number, cb: (err: (Error & { errno?: number }) | null) => void): void;
  finish(cb: (err: Error | null) => void): void;
  readonly completed: boolean;
}
type BackupCapable = { backup(file: string, destName: string, sourceName: string, filenameIsDest: boolean, cb: (err: Error | null) => void): DriverBackup };

/** Copies every page of `sourceFile` into the connection's main database in one step; retries while the destination is busy. */
function copyWithBackupApi(conn: Conn, sourceFile: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const backup = (conn.raw as unknown as BackupCapable).backup(sourceFile, 'main', 'main', false, (err) => {
      if (err) return reject(err);
      let attempts = 0;
      const step = () =>
        backup.step(-1, (stepErr) => {
          const busy = stepErr && (stepErr.errno === sqlite3.BUSY || stepErr.errno === sqlite3.LOCKED);
          if (busy && ++attempts < 50) return void setTimeout(step, 100);
          backup.finish((finishErr) => {
            if (stepErr || finishErr) reject(stepErr ?? finishErr);
            else if (!backup.completed) reject(new Error('the database copy did not complete'));
            else resolve();
          });
        });
      step();
    });
  });
}

/**
 * A read-only handle on a SQLite file that is not the live database (a backup being checked before restore).
 * Nothing is created or changed: the file is opened SQLITE_OPEN_READONLY with query_only set.
 */
export class ReadonlyDatabase implements Queryable {
  private constructor(private readonly conn: Conn) {}

  static async open(file: string): Promise<ReadonlyDatabase> {
    const conn = await Conn.open(file, true);
    try {
      conn.raw.configure('busyTimeout', 2000);
      await conn.exec('PRAGMA query_only = ON');
    } catch (e) {
      await conn.close().catch(() => undefined);
      throw e;
    }
    return new ReadonlyDatabase(conn);
  }

  get<T = Row>(sql: string, params?: readonly Param[]): Promise<T | undefined> {
    return this.conn.get<T>(sql, params);
  }

  all<T = Row>(sql: string, params?: readonly Param[]): Promise<T[]> {
    return this.conn.all<T>(sql, params);
  }

  close(): Promise<void> {
    return this.conn.close();
  }
}

async function configure(c: Conn, busyMs: number): Promise<void> {
  c.raw.configure('busyTimeout', busyMs);
  await c.exec('PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;');
}
