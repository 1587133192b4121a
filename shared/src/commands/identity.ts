/**
 * Second-factor and API-token commands shared by the portal (self-service), the panel and the CLI.
 * Every change is audited; codes, seeds and tokens are returned once to the caller and never recorded.
 */
import type { Database } from '../db/sqlite.ts';
import type { Vault } from '../crypto.ts';
import { mutate, type Actor } from '../audit.ts';
import { getUser, getUserById, updateUser, type User } from '../repos/users.ts';
import { revokeUserSessions } from '../repos/sessions.ts';
import { createApiToken, getToken, revokeApiToken, type ApiToken, type TokenOrigin } from '../repos/tokens.ts';
import { encryptTotpSecret, matchStep, newRecoveryCodes, newTotpSecret, otpauthUri, storeRecoveryCodes } from '../totp.ts';
import { normalizeHost } from '../hostname.ts';
import { CommandError } from './errors.ts';

async function mustUser(db: Database, username: string): Promise<User> {
  const u = await getUser(db, username);
  if (!u) throw new CommandError(`no user ${username}`, 404);
  return u;
}

/** Operator provisioning: enrolls a new TOTP seed for a user right away; returns the URI and secret (shown once). */
export async function provisionTotp(db: Database, vault: Vault, actor: Actor, username: string, issuer = 'Argos'): Promise<{ secret: string; uri: string }> {
  const user = await mustUser(db, username);
  const secret = newTotpSecret();
  await mutate(db, actor, async (tx) => {
    await updateUser(tx, user.id, { totpSecret: encryptTotpSecret(vault, user.id, secret), totpEnabledAt: Date.now(), totpLastStep: 0 });
    return { result: undefined, audit: { action: 'user.2fa.enroll', target: user.username, details: { by: 'operator' } } };
  });
  return { secret, uri: otpauthUri(secret, user.username, issuer) };
}

/**
 * Self-service enrollment: the seed counts only once a valid code for it is entered. Returns fresh recovery
 * codes (shown once). `nowMs` is injectable for tests.
 */
export async function confirmTotpEnrollment(db: Database, vault: Vault, actor: Actor, userId: number, secret: string, code: string, nowMs = Date.now()): Promise<string[]> {
  const step = matchStep(secret, code.trim(), nowMs);
  if (step === null) throw new CommandError('That code is not valid for this secret. Check the time on your device and try again.', 400, { code: 'Invalid code.' });
  const codes = newRecoveryCodes();
  await mutate(db, actor, async (tx) => {
    const user = await getUserById(tx, userId);
    if (!user) throw new CommandError('no such user', 404);
    if (user.totpEnabledAt) throw new CommandError('Two-factor authentication is already enabled.', 409);
    await updateUser(tx, userId, { totpSecret: encryptTotpSecret(vault, userId, secret), totpEnabledAt: nowMs, totpLastStep: step });
    await storeRecoveryCodes(tx, userId, codes);
    return { result: undefined, audit: { action: 'user.2fa.enroll', target: user.username, details: { by: 'self' } } };
  });
  return codes;
}

/** Issues a fresh set of 10 recovery codes (the old ones stop working). */
export async function regenerateRecoveryCodes(db: Database, actor: Actor, username: string): Promise<string[]> {
  const user = await mustUser(db, username);
  if (!user.totpEnabledAt) throw new CommandError(`${user.username} has no two-factor authentication; enroll TOTP first`, 409);
  const codes = newRecoveryCodes();
  await mutate(db, actor, async (tx) => {
    await storeRecoveryCodes(tx, user.id, codes);
    return { result: undefined, audit: { action: 'user.2fa.recovery_codes', target: user.username } };
  });
  return codes;
}

/** Removes a user's TOTP and recovery codes and ends their sessions (operator reset, or the user's own disable). */
export async function resetTotp(db: Database, actor: Actor, username: string): Promise<void> {
  const user = await mustUser(db, username);
  await mutate(db, actor, async (tx) => {
    await updateUser(tx, user.id, { totpSecret: null, totpEnabledAt: null, totpLastStep: 0 });
    await tx.run('DELETE FROM recovery_codes WHERE user_id = ?', [user.id]);
    const ended = await revokeUserSessions(tx, user.id);
    return { result: undefined, audit: { action: 'user.2fa.reset', target: user.username, details: { had_totp: !!user.totpEnabledAt, sessions_ended: ended } } };
  });
}

export interface TokenFields {
  name: string;
  hosts?: string[];
  expiresInDays?: number | null;
  adminScope?: boolean;
  /** Self-service tokens carry the factors and the kind of the session that minted them. */
  factors?: number;
  origin?: TokenOrigin;
}

/** Creates an API token for a user; returns the token (shown once). Admin-scope tokens need an admin user. */
export async function issueApiToken(db: Database, actor: Actor, username: string, f: TokenFields, now = Date.now()): Promise<{ id: number; token: string; expiresAt: number | null }> {
  const user = await mustUser(db, username);
  const name = f.name.trim();
  if (!name || name.length > 80) throw new CommandError('Token name: 1-80 characters.', 400, { name: 'Give the token a name (1-80 characters).' });
  const hosts: string[] = [];
  for (const h of f.hosts ?? []) {
    const n = normalizeHost(h);
    if (!n) throw new CommandError(`"${h}" is not a host name`, 400, { hosts: `"${h}" is not a host name.` });
    hosts.push(n);
  }
  const days = f.expiresInDays ?? 90;
  if (days !== null && !(Number.isInteger(days) && days >= 1 && days <= 3650)) throw new CommandError('Expiry must be 1-3650 days.', 400, { expiresInDays: 'Expiry must be 1-3650 days.' });
  if (f.adminScope && !user.isAdmin) throw new CommandError('Only admins can hold panel API tokens.', 403);
  const expiresAt = days === null ? null : now + days * 86_400_000;
  return mutate(db, actor, async (tx) => {
    const { id, token } = await createApiToken(tx, { userId: user.id, name, hosts: [...new Set(hosts)], adminScope: !!f.adminScope, expiresAt, factors: f.factors, origin: f.origin }, now);
    return { result: { id, token, expiresAt }, audit: { action: 'token.create', target: user.username, details: { id, name, hosts, admin_scope: !!f.adminScope, expires_at: expiresAt } } };
  });
}

/** Revokes a token; `ownerId` restricts it to that user's tokens (self-service). */
export async function revokeToken(db: Database, actor: Actor, id: number, ownerId?: number): Promise<ApiToken> {
  return mutate(db, actor, async (tx) => {
    const t = await getToken(tx, id);
    if (!t || (ownerId !== undefined && t.userId !== ownerId)) throw new CommandError(`no token ${id}`, 404);
    await revokeApiToken(tx, id);
    return { result: t, audit: { action: 'token.revoke', target: String(id), details: { name: t.name, user_id: t.userId } } };
  });
}
