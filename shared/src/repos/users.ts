/** Users and groups repository. Usernames are stored lowercase; mutations require an AuditedTx. */
import type { Queryable, Tx } from '../db/sqlite.ts';
import type { AuditedTx } from '../audit.ts';

export interface User {
  id: number;
  username: string;
  email: string | null;
  displayName: string | null;
  passwordHash: string | null;
  isAdmin: boolean;
  disabled: boolean;
  mustChangePassword: boolean;
  totpSecret: string | null; // Vault ciphertext
  totpEnabledAt: number | null;
  totpLastStep: number;
  oidcIssuer: string | null;
  oidcSubject: string | null;
  lastLoginAt: number | null;
  groups: string[];
  createdAt: number;
  updatedAt: number;
}

interface UserRow {
  id: number;
  username: string;
  email: string | null;
  display_name: string | null;
  password_hash: string | null;
  is_admin: number;
  disabled: number;
  must_change_password: number;
  totp_secret: string | null;
  totp_enabled_at: number | null;
  totp_last_step: number;
  oidc_issuer: string | null;
  oidc_subject: string | null;
  last_login_at: number | null;
  created_at: number;
  updated_at: number;
}

const toUser = (r: UserRow, groups: string[]): User => ({
  id: r.id,
  username: r.username,
  email: r.email,
  displayName: r.display_name,
  passwordHash: r.password_hash,
  isAdmin: !!r.is_admin,
  disabled: !!r.disabled,
  mustChangePassword: !!r.must_change_password,
  totpSecret: r.totp_secret,
  totpEnabledAt: r.totp_enabled_at,
  totpLastStep: r.totp_last_step,
  oidcIssuer: r.oidc_issuer,
  oidcSubject: r.oidc_subject,
  lastLoginAt: r.last_login_at,
  groups,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const USERNAME_RE = /^[a-z0-9][a-z0-9._@-]{0,63}$/;

export function normalizeUsername(raw: string): string {
  return raw.trim().toLowerCase();
}

async function groupsByUser(q: Queryable, userId: number | null = null): Promise<Map<number, string[]>> {
  const rows = await q.all<{ user_id: number; name: string }>(
    'SELECT ug.user_id, g.name FROM user_groups ug JOIN groups g ON g.id = ug.group_id WHERE (?1 IS NULL OR ug.user_id = ?1) ORDER BY g.name',
    [userId],
  );
  const m = new Map<number, string[]>();
  for (const r of rows) m.set(r.user_id, [...(m.get(r.user_id) ?? []), r.name]);
  return m;
}

export async function listUsers(q: Queryable): Promise<User[]> {
  const rows = await q.all<UserRow>('SELECT * FROM users ORDER BY username');
  const groups = await groupsByUser(q);
  return rows.map((r) => toUser(r, groups.get(r.id) ?? []));
}

export async function getUser(q: Queryable, username: string): Promise<User | null> {
  const row = await q.get<UserRow>('SELECT * FROM users WHERE username = ?', [normalizeUsername(username)]);
  return row ? toUser(row, (await groupsByUser(q, row.id)).get(row.id) ?? []) : null;
}

export async function getUserById(q: Queryable, id: number): Promise<User | null> {
  const row = await q.get<UserRow>('SELECT * FROM users WHERE id = ?', [id]);
  return row ? toUser(row, (await groupsByUser(q, row.id)).get(row.id) ?? []) : null;
}

export async function countUsers(q: Queryable): Promise<number> {
  return (await q.get<{ n: number }>('SELECT count(*) AS n FROM users'))?.n ?? 0;
}

/** Records a successful sign-in. Not an operator mutation: the login itself is audited by the caller. */
export async function recordLogin(tx: Tx, userId: number, now = Date.now()): Promise<void> {
  await tx.run('UPDATE users SET last_login_at = ? WHERE id = ?', [now, userId]);
}

export async function countAdmins(q: Queryable): Promise<number> {
  return (await q.get<{ n: number }>('SELECT count(*) AS n FROM users WHERE is_admin = 1 AND disabled = 0'))?.n ?? 0;
}

export interface UserInput {
  username: string;
  email: string | null;
  displayName: string | null;
  passwordHash: string | null;
  isAdmin: boolean;
  disabled: boolean;
  mustChangePassword: boolean;
}

export async function createUser(tx: AuditedTx, u: UserInput, now = Date.now()): Promise<number> {
  const r = await tx.run(
    `INSERT INTO users (username, email, display_name, password_hash, is_admin, disabled, must_change_password, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [u.username, u.email, u.displayName, u.passwordHash, u.isAdmin ? 1 : 0, u.disabled ? 1 : 0, u.mustChangePassword ? 1 : 0, now, now],
  );
  return r.lastID;
}

export type UserPatch = Partial<Omit<UserInput, 'username'>> & { totpSecret?: string | null; totpEnabledAt?: number | null; totpLastStep?: number; lastLoginAt?: number };

/** Updates the given fields only: each column is set when its flag parameter is 1 (static SQL, no string building). */
export async function updateUser(tx: AuditedTx, id: number, p: UserPatch, now = Date.now()): Promise<void> {
  const f = (v: unknown) => (v === undefined ? 0 : 1);
  const b = (v: boolean | undefined) => (v === undefined ? null : v ? 1 : 0);
  await tx.run(
    `UPDATE users SET
       email = CASE WHEN ? THEN ? ELSE email END,
       display_name = CASE WHEN ? THEN ? ELSE display_name END,
       password_hash = CASE WHEN ? THEN ? ELSE password_hash END,
       is_admin = CASE WHEN ? THEN ? ELSE is_admin END,
       disabled = CASE WHEN ? THEN ? ELSE disabled END,
       must_change_password = CASE WHEN ? THEN ? ELSE must_change_password END,
       totp_secret = CASE WHEN ? THEN ? ELSE totp_secret END,
       totp_enabled_at = CASE WHEN ? THEN ? ELSE totp_enabled_at END,
       totp_last_step = CASE WHEN ? THEN ? ELSE totp_last_step END,
       last_login_at = CASE WHEN ? THEN ? ELSE last_login_at END,
       updated_at = ?
     WHERE id = ?`,
    [
      f(p.email), p.email ?? null,
      f(p.displayName), p.displayName ?? null,
      f(p.passwordHash), p.passwordHash ?? null,
      f(p.isAdmin), b(p.isAdmin),
      f(p.disabled), b(p.disabled),
      f(p.mustChangePassword), b(p.mustChangePassword),
      f(p.totpSecret), p.totpSecret ?? null,
      f(p.totpEnabledAt), p.totpEnabledAt ?? null,
      f(p.totpLastStep), p.totpLastStep ?? 0,
      f(p.lastLoginAt), p.lastLoginAt ?? null,
      now,
      id,
    ],
  );
}

export async function deleteUser(tx: AuditedTx, id: number): Promise<void> {
  await tx.run('DELETE FROM users WHERE id = ?', [id]);
}

/** Replaces a user's group memberships, creating missing groups. */
export async function setUserGroups(tx: AuditedTx, userId: number, names: string[], now = Date.now()): Promise<void> {
  await tx.run('DELETE FROM user_groups WHERE user_id = ?', [userId]);
  for (const name of [...new Set(names)]) {
    await tx.run('INSERT OR IGNORE INTO groups (name, created_at) VALUES (?, ?)', [name, now]);
    await tx.run('INSERT INTO user_groups (user_id, group_id) SELECT ?, id FROM groups WHERE name = ?', [userId, name]);
  }
}

export interface Group {
  id: number;
  name: string;
  description: string;
  members: number;
}

export function listGroups(q: Queryable): Promise<Group[]> {
  return q.all<Group>(
    'SELECT g.id, g.name, g.description, (SELECT count(*) FROM user_groups ug WHERE ug.group_id = g.id) AS members FROM groups g ORDER BY g.name',
  );
}

export async function createGroup(tx: AuditedTx, name: string, description = '', now = Date.now()): Promise<number> {
  return (await tx.run('INSERT INTO groups (name, description, created_at) VALUES (?, ?, ?)', [name, description, now])).lastID;
}

export async function deleteGroup(tx: AuditedTx, name: string): Promise<boolean> {
  return (await tx.run('DELETE FROM groups WHERE name = ?', [name])).changes > 0;
}

export const GROUP_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
