-- 001: the initial schema. Times are integer milliseconds since the epoch.
-- Secret columns hold Vault ciphertext (k<version>.<base64url>), never plaintext.

CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- Cross-process change signal: triggers bump a topic's counter on every write that the
-- gatekeeper caches ('config': hosts, users, groups, settings, tokens; 'sessions': revocations; 'bans': login bans,
-- so a ban decided by one process is enforced by the others).
CREATE TABLE changes (
  topic TEXT PRIMARY KEY,
  counter INTEGER NOT NULL DEFAULT 0
);
INSERT INTO changes (topic, counter) VALUES ('config', 0), ('sessions', 0), ('restore', 0), ('bans', 0);

CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE secrets (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  email TEXT,
  display_name TEXT,
  password_hash TEXT,
  is_admin INTEGER NOT NULL DEFAULT 0,
  disabled INTEGER NOT NULL DEFAULT 0,
  must_change_password INTEGER NOT NULL DEFAULT 0,
  totp_secret TEXT,
  totp_enabled_at INTEGER,
  totp_last_step INTEGER NOT NULL DEFAULT 0,
  oidc_issuer TEXT,
  oidc_subject TEXT,
  last_login_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (oidc_issuer, oidc_subject)
);

CREATE TABLE groups (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  description TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);

CREATE TABLE user_groups (
  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
  PRIMARY KEY (user_id, group_id)
);

CREATE TABLE hosts (
  id INTEGER PRIMARY KEY,
  domain TEXT NOT NULL UNIQUE,
  upstreams TEXT NOT NULL,                -- JSON array of upstream URLs
  upstream_tls_verify INTEGER NOT NULL DEFAULT 1,
  policy TEXT NOT NULL CHECK (policy IN ('bypass', 'one_factor', 'two_factor', 'deny')),
  tls_mode TEXT NOT NULL DEFAULT 'acme' CHECK (tls_mode IN ('acme', 'internal', 'off')),
  enabled INTEGER NOT NULL DEFAULT 1,
  allowed_users TEXT NOT NULL DEFAULT '[]',
  allowed_groups TEXT NOT NULL DEFAULT '[]',
  allow_basic INTEGER NOT NULL DEFAULT 0,
  allow_tokens INTEGER NOT NULL DEFAULT 0,
  geo_mode TEXT NOT NULL DEFAULT 'inherit' CHECK (geo_mode IN ('inherit', 'off', 'allow', 'deny')),
  geo_countries TEXT NOT NULL DEFAULT '[]',
  geo_lan TEXT NOT NULL DEFAULT 'allow' CHECK (geo_lan IN ('allow', 'deny')),
  geo_unknown TEXT NOT NULL DEFAULT 'allow' CHECK (geo_unknown IN ('allow', 'deny')),
  rate_limit INTEGER,                     -- requests per rate_window_s; NULL = global default
  rate_window_s INTEGER,
  rate_burst INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE host_rules (
  id INTEGER PRIMARY KEY,
  host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  policy TEXT NOT NULL CHECK (policy IN ('bypass', 'one_factor', 'two_factor', 'deny')),
  paths TEXT NOT NULL DEFAULT '[]',
  methods TEXT NOT NULL DEFAULT '[]',
  networks TEXT NOT NULL DEFAULT '[]',
  created_at INTEGER NOT NULL
);
CREATE INDEX host_rules_host ON host_rules (host_id, position);

CREATE TABLE sessions (
  id INTEGER PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('portal', 'panel')),
  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  factors INTEGER NOT NULL DEFAULT 1,
  auth_method TEXT NOT NULL DEFAULT 'password',
  remember INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  idle_timeout_s INTEGER NOT NULL,
  ip TEXT,
  user_agent TEXT,
  country TEXT,
  csrf_secret TEXT,
  reauth_at INTEGER,
  revoked_at INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  hosts TEXT NOT NULL DEFAULT '[]',
  admin_scope INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER,
  last_used_at INTEGER,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);

CREATE TABLE recovery_codes (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_hash TEXT NOT NULL,
  used_at INTEGER
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- Login regulation bans (attempt counters stay in memory; bans survive restarts).
CREATE TABLE bans (
  key TEXT PRIMARY KEY,
  until INTEGER NOT NULL,
  strikes INTEGER NOT NULL DEFAULT 1,
  reason TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL DEFAULT '',
  ip TEXT,
  user_agent TEXT,
  details TEXT NOT NULL DEFAULT '{}',
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX audit_log_ts ON audit_log (ts);

CREATE TABLE decision_log (
  id INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  host TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  ip TEXT NOT NULL,
  country TEXT,
  user TEXT,
  verdict TEXT NOT NULL,
  reason TEXT NOT NULL,
  status INTEGER NOT NULL,
  latency_us INTEGER NOT NULL
);
CREATE INDEX decision_log_ts ON decision_log (ts);

CREATE TRIGGER hosts_ai_changes AFTER INSERT ON hosts BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER hosts_au_changes AFTER UPDATE ON hosts BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER hosts_ad_changes AFTER DELETE ON hosts BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER host_rules_ai_changes AFTER INSERT ON host_rules BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER host_rules_au_changes AFTER UPDATE ON host_rules BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER host_rules_ad_changes AFTER DELETE ON host_rules BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER users_ai_changes AFTER INSERT ON users BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER users_au_changes AFTER UPDATE ON users
  WHEN OLD.username IS NOT NEW.username OR OLD.email IS NOT NEW.email OR OLD.display_name IS NOT NEW.display_name OR OLD.is_admin IS NOT NEW.is_admin
    OR OLD.disabled IS NOT NEW.disabled OR OLD.totp_enabled_at IS NOT NEW.totp_enabled_at OR OLD.oidc_subject IS NOT NEW.oidc_subject
BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER users_ad_changes AFTER DELETE ON users BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER groups_ai_changes AFTER INSERT ON groups BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER groups_au_changes AFTER UPDATE ON groups BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER groups_ad_changes AFTER DELETE ON groups BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER user_groups_ai_changes AFTER INSERT ON user_groups BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER user_groups_au_changes AFTER UPDATE ON user_groups BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER user_groups_ad_changes AFTER DELETE ON user_groups BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER settings_ai_changes AFTER INSERT ON settings BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER settings_au_changes AFTER UPDATE ON settings BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER settings_ad_changes AFTER DELETE ON settings BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER api_tokens_ai_changes AFTER INSERT ON api_tokens BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER api_tokens_au_changes AFTER UPDATE ON api_tokens
  WHEN OLD.revoked_at IS NOT NEW.revoked_at OR OLD.hosts IS NOT NEW.hosts OR OLD.expires_at IS NOT NEW.expires_at OR OLD.admin_scope IS NOT NEW.admin_scope
BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER api_tokens_ad_changes AFTER DELETE ON api_tokens BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'config'; END;
CREATE TRIGGER sessions_revoke_changes AFTER UPDATE OF revoked_at ON sessions BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'sessions'; END;
CREATE TRIGGER sessions_ad_changes AFTER DELETE ON sessions BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'sessions'; END;
CREATE TRIGGER bans_ai_changes AFTER INSERT ON bans BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'bans'; END;
CREATE TRIGGER bans_au_changes AFTER UPDATE ON bans BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'bans'; END;
CREATE TRIGGER bans_ad_changes AFTER DELETE ON bans BEGIN UPDATE changes SET counter = counter + 1 WHERE topic = 'bans'; END;
