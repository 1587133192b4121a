-- 002: backups made by Argos (on demand, scheduled, or as the safety copy taken before a restore).
-- The SHA-256 of the database snapshot is recorded here as well as in the archive's signed manifest.
-- Rows are kept after the file is pruned (deleted_at set), as a history.

CREATE TABLE backups (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,              -- file name inside <data dir>/backups
  kind TEXT NOT NULL CHECK (kind IN ('manual', 'scheduled', 'safety')),
  db_sha256 TEXT NOT NULL,                -- SHA-256 of the argos.db entry (as in the manifest)
  archive_sha256 TEXT NOT NULL,           -- SHA-256 of the .tar.gz file as written
  size INTEGER NOT NULL,                  -- bytes of the .tar.gz file
  schema_version INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  deleted_at INTEGER
);
CREATE INDEX backups_created ON backups (created_at);
