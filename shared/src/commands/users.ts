/**
 * User commands shared by the panel and the CLI: validate, hash outside the transaction, mutate with audit.
 * Password changes and disabling end the user's sessions in the same transaction.
 */
import type { Database } from '../db/sqlite.ts';
import { mutate, type Actor } from '../audit.ts';
import { hashPassword, passwordProblem } from '../password.ts';
import { randomPassword } from '../crypto.ts';
import { revokeUserSessions } from '../repos/sessions.ts';
import { revokeAdminTokens } from '../repos/tokens.ts';
import {
  GROUP_RE,
  USERNAME_RE,
  countAdmins,
  createUser,
  deleteUser,
  getUser,
  normalizeUsername,
  setUserGroups,
  updateUser,
  type User,
} from '../repos/users.ts';
import { splitList } from '../settings.ts';
import { CommandError, type FieldErrors } from './errors.ts';

export interface UserFields {
  username?: string;
  password?: string;
  email?: string | null;
  displayName?: string | null;
  groups?: string | string[];
  isAdmin?: boolean | string;
  disabled?: boolean | string;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const bool = (v: boolean | string | undefined) => (v === undefined ? undefined : typeof v === 'boolean' ? v : ['1', 'true', 'on', 'yes'].includes(v.toLowerCase()));
const groupList = (v: string | string[] | undefined) =>
  v === undefined ? undefined : [...new Set((Array.isArray(v) ? v.flatMap(splitList) : splitList(v)).map((g) => g.toLowerCase()))];

/** The public view of a user (no hashes, no TOTP seed). */
export function presentUser(u: User) {
  return {
    username: u.username,
    email: u.email,
    displayName: u.displayName,
    groups: u.groups,
    isAdmin: u.isAdmin,
    disabled: u.disabled,
    totp: u.totpEnabledAt !== null,
    sso: u.oidcSubject !== null,
    lastLoginAt: u.lastLoginAt,
    createdAt: u.createdAt,
  };
}

function validateCommon(f: UserFields, errors: FieldErrors) {
  const email = f.email === undefined ? undefined : f.email === null || f.email.trim() === '' ? null : f.email.trim();
  if (email && (!EMAIL.test(email) || email.length > 254)) errors.email = `"${email}" is not an e-mail address.`;
  const displayName = f.displayName === undefined ? undefined : f.displayName?.trim() || null;
  if (displayName && displayName.length > 100) errors.displayName = 'At most 100 characters.';
  const groups = groupList(f.groups);
  const badGroup = groups?.find((g) => !GROUP_RE.test(g));
  if (badGroup) errors.groups = `"${badGroup}" is not a valid group name (letters, digits, . _ -).`;
  return { email, displayName, groups };
}

export async function addUser(db: Database, actor: Actor, f: UserFields): Promise<User> {
  const errors: FieldErrors = {};
  const username = normalizeUsername(f.username ?? '');
  if (!USERNAME_RE.test(username)) errors.username = 'Username: 1-64 characters, letters, digits, . _ @ -, starting with a letter or digit.';
  const pw = f.password ?? '';
  const pwProblem = passwordProblem(pw);
  if (pwProblem) errors.password = pwProblem;
  const common = validateCommon(f, errors);
  if (Object.keys(errors).length) throw new CommandError('invalid user', 400, errors);
  const passwordHash = await hashPassword(pw);
  return mutate(db, actor, async (tx) => {
    if (await getUser(tx, username)) throw new CommandError('user exists', 409, { username: `User ${username} already exists.` });
    const id = await createUser(tx, {
      username,
      email: common.email ?? null,
      displayName: common.displayName ?? null,
      passwordHash,
      isAdmin: bool(f.isAdmin) ?? false,
      disabled: bool(f.disabled) ?? false,
      mustChangePassword: false,
    });
    if (common.groups?.length) await setUserGroups(tx, id, common.groups);
    const user = (await getUser(tx, username))!;
    return { result: user, audit: { action: 'user.create', target: username, after: presentUser(user) } };
  });
}

/** Edits profile fields, groups, admin flag and disabled flag. Disabling ends every session of the user. */
export async function editUser(db: Database, actor: Actor, username: string, f: UserFields): Promise<User> {
  const errors: FieldErrors = {};
  const common = validateCommon(f, errors);
  if (Object.keys(errors).length) throw new CommandError('invalid user', 400, errors);
  return mutate(db, actor, async (tx) => {
    const before = await getUser(tx, username);
    if (!before) throw new CommandError(`no user ${username}`, 404);
    const isAdmin = bool(f.isAdmin);
    const disabled = bool(f.disabled);
    if ((isAdmin === false || disabled === true) && before.isAdmin && !before.disabled && (await countAdmins(tx)) <= 1) {
      throw new CommandError('last admin', 409, { isAdmin: 'This is the last active admin: create another admin first.' });
    }
    await updateUser(tx, before.id, { email: common.email, displayName: common.displayName, isAdmin, disabled });
    if (common.groups) await setUserGroups(tx, before.id, common.groups);
    if (disabled === true && !before.disabled) await revokeUserSessions(tx, before.id);
    const after = (await getUser(tx, username))!;
    return { result: after, audit: { action: disabled === true && !before.disabled ? 'user.disable' : disabled === false && before.disabled ? 'user.enable' : 'user.update', target: before.username, before: presentUser(before), after: presentUser(after) } };
  });
}

/** Sets a new password and ends the user's sessions. `mustChange` marks it one-time (admin reset). */
export async function setPassword(db: Database, actor: Actor, username: string, password: string, mustChange = false): Promise<void> {
  const problem = passwordProblem(password);
  if (problem) throw new CommandError(problem, 400, { password: problem });
  const passwordHash = await hashPassword(password);
  await mutate(db, actor, async (tx) => {
    const user = await getUser(tx, username);
    if (!user) throw new CommandError(`no user ${username}`, 404);
    await updateUser(tx, user.id, { passwordHash, mustChangePassword: mustChange });
    const ended = await revokeUserSessions(tx, user.id);
    // Panel API tokens are as strong as a signed-in admin: a password change (or reset after a theft) ends them too.
    const tokens = await revokeAdminTokens(tx, user.id);
    return { result: undefined, audit: { action: mustChange ? 'user.password.reset' : 'user.password.set', target: user.username, details: { sessions_ended: ended, admin_tokens_revoked: tokens } } };
  });
}

/** Recovery for a lost admin password: a one-time password the admin must change at next sign-in. */
export async function resetAdminPassword(db: Database, actor: Actor, username: string): Promise<string> {
  const user = await getUser(db, username);
  if (!user) throw new CommandError(`no user ${username}`, 404);
  if (!user.isAdmin) throw new CommandError(`${user.username} is not an admin (use \`argos user set-password\`)`, 400);
  const once = randomPassword(20);
  await setPassword(db, actor, user.username, once, true);
  return once;
}

export async function removeUser(db: Database, actor: Actor, username: string): Promise<void> {
  await mutate(db, actor, async (tx) => {
    const user = await getUser(tx, username);
    if (!user) throw new CommandError(`no user ${username}`, 404);
    if (user.isAdmin && !user.disabled && (await countAdmins(tx)) <= 1) throw new CommandError('This is the last active admin: create another admin first.', 409);
    await deleteUser(tx, user.id);
    return { result: undefined, audit: { action: 'user.delete', target: user.username, before: presentUser(user) } };
  });
}
