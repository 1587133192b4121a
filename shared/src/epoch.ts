/**
 * The database watch every long-running service runs (panel, gatekeeper), polled like the change signal:
 *
 * - restore epoch (`changes.restore`): a restore copied a backup into the live database in place (backup.ts);
 *   the service keeps its connections, reloads what it caches (`onRestore`) and logs it;
 * - key version (`meta.key_version`): the master key was rotated; this process holds the old key, so it stops with
 *   a message to restart with the new ARGOS_MASTER_KEY (it could not decrypt any secret any more);
 * - file identity (device + inode of the database file): the file was replaced or removed under the running
 *   service (not through `argos backup restore`); its connections point at the old file, so it stops.
 */
import fs from 'node:fs';
import type { Database } from './db/sqlite.ts';
import type { Vault } from './crypto.ts';
import type { Logger } from './log.ts';

/** Exit code when the master key was rotated under a running service (EX_CONFIG: restart with new configuration). */
export const EXIT_KEY_ROTATED = 78;
/** Exit code when the database file was replaced under a running service. */
export const EXIT_DB_REPLACED = 75;

export interface DatabaseWatchOptions {
  service: string;
  db: Database;
  vault: Vault;
  log: Logger;
  intervalMs?: number;
  /** Called once per restore epoch change, after the restore committed. */
  onRestore?: (epoch: number) => void | Promise<void>;
  /** How to stop the process (tests replace it). Default: message to stderr, graceful shutdown, exit with the code. */
  exit?: (message: string, code: number) => void;
}

export interface DatabaseWatch {
  /** One poll (tests call it directly). */
  check(): Promise<void>;
  stop(): void;
}

const identity = (file: string): string | null => {
  try {
    const st = fs.statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
};

/**
 * Stops the process through its own graceful shutdown (the SIGTERM handler: close the server, stop a managed Caddy,
 * close the database), with `code` as the exit status whatever that handler exits with; forced after 10 s.
 */
export function stopProcess(message: string, code: number): void {
  process.stderr.write(`${message}\n`);
  process.on('exit', () => {
    process.exitCode = code;
  });
  setTimeout(() => process.exit(code), 10_000).unref();
  process.kill(process.pid, 'SIGTERM');
}

export function watchDatabase(o: DatabaseWatchOptions): DatabaseWatch {
  const exit = o.exit ?? ((message: string, code: number) => stopProcess(`${o.service}: ${message}`, code));
  const file = o.db.file;
  const fileId = identity(file);
  let epoch: number | null = null;
  let stopped = false;
  let inflight: Promise<void> | null = null;

  const poll = async () => {
    if (stopped) return;
    try {
      const now = identity(file);
      if (now !== fileId) {
        stopped = true;
        const message = `the database file ${file} was ${now ? 'replaced' : 'removed'} while the ${o.service} was running (restore backups with \`argos backup restore\`, which works in place): restart Argos`;
        o.log.fatal({ file }, message);
        return exit(message, EXIT_DB_REPLACED);
      }
      const kv = await o.db.get<{ value: string }>("SELECT value FROM meta WHERE key = 'key_version'");
      const version = kv ? Number(kv.value) : 1;
      if (version !== o.vault.keyVersion) {
        stopped = true;
        const message = `master key rotated: restart with the new ARGOS_MASTER_KEY (the database is at key version ${version}, this ${o.service} holds version ${o.vault.keyVersion})`;
        o.log.fatal({ keyVersion: version }, message);
        return exit(message, EXIT_KEY_ROTATED);
      }
      const row = await o.db.get<{ counter: number }>("SELECT counter FROM changes WHERE topic = 'restore'");
      const current = row?.counter ?? 0;
      if (epoch !== null && current !== epoch) {
        o.log.warn({ epoch: current }, `database restored from a backup: the ${o.service} reloads its state`);
        epoch = current;
        await o.onRestore?.(current);
      }
      epoch = current;
    } catch (err) {
      o.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'database watch poll failed');
    }
  };
  const check = () => (inflight ??= poll().finally(() => (inflight = null)));

  void check();
  const timer = setInterval(() => void check(), o.intervalMs ?? 1000);
  timer.unref();
  return {
    check,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
