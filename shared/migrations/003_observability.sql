-- 003: observability. Times are integer milliseconds since the epoch.
-- notification_log: every notification delivery outcome (shown in the panel), one row per message and channel.
-- access_log: Caddy's JSON access log as ingested by the panel; paths are stored WITHOUT query strings
--   (they carry OIDC codes, states and return URLs). Pruned by housekeeping (setting traffic.retention).
-- login_countries: the countries each user has signed in from, for "first sign-in from a new country" alerts.

CREATE TABLE notification_log (
  id INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  channel TEXT NOT NULL,                  -- smtp | webhook
  event TEXT NOT NULL,                    -- an event key (ban, admin_login, …) or "test"
  outcome TEXT NOT NULL CHECK (outcome IN ('sent', 'failed', 'throttled', 'dropped')),
  subject TEXT NOT NULL,
  events INTEGER NOT NULL DEFAULT 1,      -- audit entries this message covers (a digest covers many)
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT
);
CREATE INDEX notification_log_ts ON notification_log (ts);

CREATE TABLE access_log (
  id INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  host TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  status INTEGER NOT NULL,
  duration_ms REAL NOT NULL,
  bytes INTEGER NOT NULL,
  ip TEXT NOT NULL,
  country TEXT
);
CREATE INDEX access_log_ts ON access_log (ts);

CREATE TABLE login_countries (
  username TEXT NOT NULL,
  country TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  PRIMARY KEY (username, country)
) WITHOUT ROWID;
