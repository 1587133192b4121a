/**
 * Numbered, hand-written SQL migrations (shared/migrations/NNN_name.sql), never edited once released.
 * The panel (and the CLI) apply them; the gatekeeper only checks the version and waits or refuses.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from './sqlite.ts';

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'migrations');

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function listMigrations(dir = DIR): Migration[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 3)), name: f.slice(4, -4), sql: fs.readFileSync(path.join(dir, f), 'utf8') }));
}

/** The schema version this build of Argos expects. */
export const SCHEMA_VERSION = listMigrations().at(-1)?.version ?? 0;

export class SchemaMismatch extends Error {
  constructor(
    readonly found: number,
    readonly expected: number,
  ) {
    super(
      found > expected
        ? `database schema is version ${found}, newer than this Argos (expects ${expected}): upgrade Argos, or restore a backup made by this version`
        : `database schema is version ${found}, this Argos expects ${expected}: start the panel (or run \`argos migrate\`) to upgrade it`,
    );
    this.name = 'SchemaMismatch';
  }
}

export async function schemaVersion(db: Database): Promise<number> {
  const t = await db.get<{ n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'");
  if (!t?.n) return 0;
  const row = await db.get<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
  return row?.v ?? 0;
}

/** Applies pending migrations, each in its own IMMEDIATE transaction. Refuses a database newer than this build. */
export async function migrate(db: Database, migrations = listMigrations()): Promise<number[]> {
  const applied: number[] = [];
  const latest = migrations.at(-1)?.version ?? 0;
  await db.write((tx) =>
    tx.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)'),
  );
  for (const m of migrations) {
    const done = await db.write(async (tx) => {
      const cur = (await tx.get<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations'))?.v ?? 0;
      if (cur > latest) throw new SchemaMismatch(cur, latest);
      if (cur >= m.version) return false;
      await tx.exec(m.sql);
      await tx.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, Date.now()]);
      return true;
    });
    if (done) applied.push(m.version);
  }
  const v = await schemaVersion(db);
  if (v !== latest) throw new SchemaMismatch(v, latest);
  return applied;
}

/** For the process that does not migrate: waits up to `timeoutMs` for the expected version, refuses a newer one. */
export async function waitForSchema(db: Database, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await schemaVersion(db);
    if (v === SCHEMA_VERSION) return;
    if (v > SCHEMA_VERSION || Date.now() > deadline) throw new SchemaMismatch(v, SCHEMA_VERSION);
    await new Promise((r) => setTimeout(r, 250));
  }
}
