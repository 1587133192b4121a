/**
 * From a validated SSO sign-in to an Argos user. Users are keyed by (issuer, sub), never by e-mail alone:
 * - a user already linked to (issuer, sub) is that user (profile and groups refreshed from the provider);
 * - otherwise, only if the operator enabled oidc.link_existing and the provider marks the address verified,
 *   the one existing user with that e-mail address is linked, unless it is an admin (admins are linked only
 *   from the panel by the signed-in admin: a compromised provider must not be able to take over an admin);
 * - otherwise, only if oidc.auto_provision is on, a new user is created, never an admin.
 * The allow-lists (exact addresses, exact domains) and the email_verified requirement apply to every SSO
 * sign-in, new or known. Group claims map into Argos groups; no claim ever grants admin rights.
 */
import { createHash } from 'node:crypto';
import type { Database, Queryable } from '../db/sqlite.ts';
import { mutate, type Actor, type AuditedTx } from '../audit.ts';
import type { SettingsMap } from '../settings.ts';
import { GROUP_RE, USERNAME_RE, createUser, getUser, getUserById, listUsers, setUserGroups, updateUser, type User } from '../repos/users.ts';
import { emailAllowed, parseEmail, type ParsedEmail } from './email.ts';
import { OidcRefused } from './flow.ts';

export type PolicySettings = Pick<
  SettingsMap,
  | 'oidc.allowed_domains'
  | 'oidc.allowed_emails'
  | 'oidc.auto_provision'
  | 'oidc.require_email_verified'
  | 'oidc.groups_claim'
  | 'oidc.link_existing'
  | 'oidc.trust_idp_mfa'
>;

/** What Argos takes from a provider's claims. */
export interface SsoIdentity {
  issuer: string;
  sub: string;
  /** The address when it parses strictly (see email.ts); the raw claim is kept for the audit log. */
  email: ParsedEmail | null;
  rawEmail: string | null;
  emailVerified: boolean;
  name: string | null;
  preferredUsername: string | null;
  /** Normalised Argos group names, or null when the provider sent no groups claim. */
  groups: string[] | null;
  /** The provider asserted a multi-factor sign-in (amr / acr). */
  mfa: boolean;
}

const str = (v: unknown, max = 200): string | null => (typeof v === 'string' && v.trim() ? v.trim().slice(0, max) : null);

/** RFC 8176 methods that show a second factor (or a multi-factor method) was used. */
const MFA_AMR = new Set(['mfa', 'mca', 'otp', 'hwk', 'swk', 'sms', 'tel', 'sc']);

/** Whether the claims assert MFA: an amr value above, or an acr naming multi-factor (PAPE multi-factor, phr, phrh, …mfa…). */
export function idpAssertedMfa(claims: Record<string, unknown>): boolean {
  const amr = Array.isArray(claims.amr) ? claims.amr : typeof claims.amr === 'string' ? [claims.amr] : [];
  if (amr.some((m) => typeof m === 'string' && MFA_AMR.has(m.toLowerCase()))) return true;
  const acr = typeof claims.acr === 'string' ? claims.acr.toLowerCase() : '';
  return !!acr && (/(^|[^a-z])mfa([^a-z]|$)|multi-?factor/.test(acr) || acr === 'phr' || acr === 'phrh');
}

/** An IdP group name as an Argos group name (lowercase, [a-z0-9._-], at most 64), or null. */
export function argosGroupName(raw: unknown): string | null {
  if (typeof raw !== 'string') return null;
  const g = raw
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 64)
    .replace(/-+$/, '');
  return GROUP_RE.test(g) ? g : null;
}

/** The groups claim as Argos group names; null when the claim is absent (groups then stay as they are). */
export function groupsFromClaims(claims: Record<string, unknown>, claimName: string): string[] | null {
  if (!claimName) return null;
  const v = claims[claimName];
  if (v === undefined || v === null) return null;
  const list = Array.isArray(v) ? v : typeof v === 'string' ? v.split(/[\s,]+/) : [];
  return [...new Set(list.map(argosGroupName).filter((g): g is string => !!g))].slice(0, 100).sort();
}

export function readIdentity(issuer: string, claims: Record<string, unknown>, settings: Pick<PolicySettings, 'oidc.groups_claim'>): SsoIdentity {
  const rawEmail = typeof claims.email === 'string' ? claims.email.slice(0, 320) : null;
  return {
    issuer,
    sub: String(claims.sub),
    email: parseEmail(rawEmail),
    rawEmail,
    // Some providers send the string "true"; anything else is not verified.
    emailVerified: claims.email_verified === true || claims.email_verified === 'true',
    name: str(claims.name, 100),
    preferredUsername: str(claims.preferred_username, 128),
    groups: groupsFromClaims(claims, settings['oidc.groups_claim']),
    mfa: idpAssertedMfa(claims),
  };
}

/** The operator's SSO policy for any sign-in: a refusal reason, or null when it passes. */
export function policyRefusal(
  id: SsoIdentity,
  s: Pick<PolicySettings, 'oidc.allowed_domains' | 'oidc.allowed_emails' | 'oidc.require_email_verified'>,
): string | null {
  const lists = { emails: s['oidc.allowed_emails'], domains: s['oidc.allowed_domains'] };
  const restricted = lists.emails.length > 0 || lists.domains.length > 0;
  if (id.rawEmail !== null && !id.email && restricted) return 'email_invalid';
  if (s['oidc.require_email_verified'] && id.rawEmail !== null && !id.emailVerified) return 'email_unverified';
  if (!restricted) return null;
  if (!id.email) return 'email_missing';
  return emailAllowed(id.email, lists) ? null : 'email_not_allowed';
}

/** The e-mail address Argos may record for the user: a parsed address the provider verified (or when verification is not required). */
export function trustedEmail(id: SsoIdentity, s: Pick<PolicySettings, 'oidc.require_email_verified'>): string | null {
  if (!id.email) return null;
  return id.emailVerified || !s['oidc.require_email_verified'] ? id.email.address : null;
}

/** The user linked to (issuer, sub), if any. */
export async function getUserByOidc(q: Queryable, issuer: string, sub: string): Promise<User | null> {
  const row = await q.get<{ id: number }>('SELECT id FROM users WHERE oidc_issuer = ? AND oidc_subject = ?', [issuer, sub]);
  return row ? getUserById(q, row.id) : null;
}

/** Users whose stored e-mail address is the same address (compared on the strict key). */
async function usersWithEmail(q: Queryable, email: ParsedEmail): Promise<User[]> {
  return (await listUsers(q)).filter((u) => parseEmail(u.email)?.key === email.key);
}

/** Links a user to (issuer, sub). */
export async function setUserOidc(tx: AuditedTx, userId: number, link: { issuer: string; sub: string } | null, now = Date.now()): Promise<void> {
  await tx.run('UPDATE users SET oidc_issuer = ?, oidc_subject = ?, updated_at = ? WHERE id = ?', [link?.issuer ?? null, link?.sub ?? null, now, userId]);
}

const slug = (raw: string | null) =>
  raw
    ? raw
        .toLowerCase()
        .replace(/[^a-z0-9._@-]+/g, '-')
        .replace(/^[^a-z0-9]+/, '')
        .slice(0, 56)
        .replace(/[-.]+$/, '')
    : '';

/** A free username for a new SSO user: preferred_username, else the address's local part, else sso-<hash>. */
async function freeUsername(q: Queryable, id: SsoIdentity): Promise<string> {
  const fallback = `sso-${createHash('sha256').update(`${id.issuer}\0${id.sub}`).digest('hex').slice(0, 12)}`;
  for (const base of [slug(id.preferredUsername), slug(id.email?.local ?? null)]) {
    if (!USERNAME_RE.test(base)) continue;
    for (let i = 1; i <= 20; i++) {
      const name = i === 1 ? base : `${base}-${i}`;
      if (!(await getUser(q, name))) return name;
    }
  }
  return fallback;
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().every((v, i) => v === [...b].sort()[i]);

export type Resolution = { user: User; how: 'known' | 'linked' | 'provisioned' };

/**
 * The Argos user for a portal SSO sign-in (see the module comment), creating or linking when the settings
 * allow it and refreshing e-mail, display name and groups from the provider. Throws OidcRefused.
 */
export async function resolvePortalUser(db: Database, client: Omit<Actor, 'name'>, id: SsoIdentity, s: PolicySettings): Promise<Resolution> {
  const refusal = policyRefusal(id, s);
  if (refusal) throw new OidcRefused(refusal, `e-mail ${JSON.stringify(id.rawEmail)} (verified: ${id.emailVerified})`);
  const email = trustedEmail(id, s);

  const known = await getUserByOidc(db, id.issuer, id.sub);
  if (known) {
    if (known.disabled) throw new OidcRefused('user_disabled', `${known.username} is disabled`);
    const changes: { email?: string; displayName?: string } = {};
    const emailFree = email && email !== known.email && !(await usersWithEmail(db, id.email!)).some((u) => u.id !== known.id);
    if (emailFree) changes.email = email;
    if (id.name && id.name !== known.displayName) changes.displayName = id.name;
    const groupsChange = id.groups !== null && !sameList(id.groups, known.groups);
    if (!Object.keys(changes).length && !groupsChange) return { user: known, how: 'known' };
    const user = await mutate(db, { name: `user:${known.username}`, ...client }, async (tx) => {
      await updateUser(tx, known.id, changes);
      if (groupsChange) await setUserGroups(tx, known.id, id.groups!);
      const after = (await getUserById(tx, known.id))!;
      return {
        result: after,
        audit: {
          action: 'user.oidc.sync',
          target: known.username,
          before: { email: known.email, displayName: known.displayName, groups: known.groups },
          after: { email: after.email, displayName: after.displayName, groups: after.groups },
        },
      };
    });
    return { user, how: 'known' };
  }

  if (s['oidc.link_existing'] && id.email && id.emailVerified) {
    const candidates = await usersWithEmail(db, id.email);
    if (candidates.length === 1) {
      const target = candidates[0]!;
      if (target.isAdmin) throw new OidcRefused('link_refused_admin', `${target.username} is an admin: link it from the panel instead`);
      if (target.disabled) throw new OidcRefused('user_disabled', `${target.username} is disabled`);
      if (target.oidcSubject) throw new OidcRefused('link_refused_linked', `${target.username} is already linked to another SSO identity`);
      const user = await mutate(db, { name: `user:${target.username}`, ...client }, async (tx) => {
        await setUserOidc(tx, target.id, { issuer: id.issuer, sub: id.sub });
        if (id.name && !target.displayName) await updateUser(tx, target.id, { displayName: id.name });
        if (id.groups !== null) await setUserGroups(tx, target.id, id.groups);
        const after = (await getUserById(tx, target.id))!;
        return {
          result: after,
          audit: {
            action: 'user.oidc.link',
            target: target.username,
            details: { issuer: id.issuer, sub: id.sub, by: 'verified_email' },
            after: { groups: after.groups },
          },
        };
      });
      return { user, how: 'linked' };
    }
    if (candidates.length > 1) throw new OidcRefused('link_ambiguous', `${candidates.length} users have this e-mail address`);
  }

  if (!s['oidc.auto_provision']) throw new OidcRefused('no_account', `no Argos user is linked to ${id.sub} at ${id.issuer} and auto-provisioning is off`);
  if (id.email && (await usersWithEmail(db, id.email)).length) {
    throw new OidcRefused('email_taken', 'another Argos user has this e-mail address (turn on oidc.link_existing to link them)');
  }
  const username = await freeUsername(db, id);
  try {
    const user = await mutate(db, { name: `user:${username}`, ...client }, async (tx) => {
      if (await getUserByOidc(tx, id.issuer, id.sub)) throw new OidcRefused('race', 'this identity was provisioned concurrently');
      const userId = await createUser(tx, {
        username,
        email,
        displayName: id.name,
        passwordHash: null,
        isAdmin: false,
        disabled: false,
        mustChangePassword: false,
      });
      await setUserOidc(tx, userId, { issuer: id.issuer, sub: id.sub });
      if (id.groups?.length) await setUserGroups(tx, userId, id.groups);
      const after = (await getUserById(tx, userId))!;
      return {
        result: after,
        audit: {
          action: 'user.oidc.provision',
          target: username,
          details: { issuer: id.issuer, sub: id.sub },
          after: { email: after.email, displayName: after.displayName, groups: after.groups },
        },
      };
    });
    return { user, how: 'provisioned' };
  } catch (e) {
    if (e instanceof OidcRefused && e.reason === 'race') {
      const again = await getUserByOidc(db, id.issuer, id.sub);
      if (again && !again.disabled) return { user: again, how: 'known' };
    }
    throw e;
  }
}

/**
 * The admin for a panel SSO sign-in: only a user already linked to (issuer, sub) who the operator marked
 * admin. Nothing is created, linked or synced here: the provider cannot make anyone an admin.
 */
export async function resolvePanelAdmin(db: Queryable, id: SsoIdentity, s: PolicySettings): Promise<User> {
  const refusal = policyRefusal(id, s);
  if (refusal) throw new OidcRefused(refusal, `e-mail ${JSON.stringify(id.rawEmail)} (verified: ${id.emailVerified})`);
  const user = await getUserByOidc(db, id.issuer, id.sub);
  if (!user) throw new OidcRefused('no_account', `no Argos user is linked to ${id.sub} at ${id.issuer}`);
  if (user.disabled) throw new OidcRefused('user_disabled', `${user.username} is disabled`);
  if (!user.isAdmin) throw new OidcRefused('not_admin', `${user.username} is not an admin`);
  return user;
}

/** Links an admin (signed in to the panel) to an SSO identity, refusing an identity linked to someone else. */
export async function linkAdmin(db: Database, actor: Actor, userId: number, id: SsoIdentity): Promise<User> {
  return mutate(db, actor, async (tx) => {
    const user = await getUserById(tx, userId);
    if (!user || !user.isAdmin || user.disabled) throw new OidcRefused('not_admin', 'the signed-in account is no longer an enabled admin');
    const other = await getUserByOidc(tx, id.issuer, id.sub);
    if (other && other.id !== userId) throw new OidcRefused('link_refused_linked', `this SSO identity is already linked to ${other.username}`);
    await setUserOidc(tx, userId, { issuer: id.issuer, sub: id.sub });
    return {
      result: (await getUserById(tx, userId))!,
      audit: { action: 'user.oidc.link', target: user.username, details: { issuer: id.issuer, sub: id.sub, by: 'panel' } },
    };
  });
}

/** Removes a user's SSO link and ends the sessions they opened through SSO (audited). */
export async function unlinkUser(db: Database, actor: Actor, userId: number, now = Date.now()): Promise<void> {
  await mutate(db, actor, async (tx) => {
    const user = await getUserById(tx, userId);
    await setUserOidc(tx, userId, null, now);
    const ended = await tx.run(
      "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND (auth_method = 'oidc' OR auth_method LIKE 'oidc+%')",
      [now, userId],
    );
    return {
      result: undefined,
      audit: {
        action: 'user.oidc.unlink',
        target: user?.username ?? String(userId),
        before: { issuer: user?.oidcIssuer, sub: user?.oidcSubject },
        details: { sso_sessions_ended: ended.changes },
      },
    };
  });
}
