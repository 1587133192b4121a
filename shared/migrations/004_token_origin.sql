-- 004: what an API token stands for. `factors`: the factors of the sign-in that created it (tokens created by the
-- operator or the CLI count as 2); `origin`: 'operator' or 'portal' or 'sso', so that tokens minted from a
-- single-sign-on session stop working when single sign-on is switched off (break glass).
ALTER TABLE api_tokens ADD COLUMN factors INTEGER NOT NULL DEFAULT 2;
ALTER TABLE api_tokens ADD COLUMN origin TEXT NOT NULL DEFAULT 'operator';
