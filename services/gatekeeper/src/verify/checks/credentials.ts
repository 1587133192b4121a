/**
 * credentials: resolves who is asking, in order: session cookie, then (if the host accepts them) a Bearer API
 * token or Basic credentials. Never decides by itself: a missing or dead credential leaves the identity empty
 * and the factors check decides what that means. A wrong token or password counts against the client.
 */
import type { Check } from './check.ts';
import { sessionAlive, type Session } from '@argos/shared/repos/sessions';
import { isSsoMethod } from '@argos/shared/oidc/mode';
import type { DecisionContext, Outcome } from '../verdict.ts';
import type { Lookups, UserView } from '../lookups.ts';
import { cont } from '../verdict.ts';

const who = (u: UserView, factors: number, via: 'session' | 'token' | 'basic') => ({
  userId: u.id,
  username: u.username,
  email: u.email,
  name: u.displayName,
  groups: u.groups,
  factors,
  via,
});

/** The identity a live session stands for; a note on why there is none otherwise. */
function fromSession(ctx: DecisionContext, look: Lookups, s: Session | null): string {
  if (!s || s.kind !== 'portal') return 'unknown session';
  if (!sessionAlive(s, look.now())) return s.revokedAt ? 'session revoked' : 'session expired';
  const user = look.user(s.userId);
  if (!user) return 'session user no longer exists';
  if (user.disabled) return `user ${user.username} is disabled`;
  if (isSsoMethod(s.authMethod) && look.ssoEnabled?.() === false) return 'session created through single sign-on, which is off';
  ctx.identity = { ...who(user, s.factors, 'session'), sessionId: s.id };
  return `session of ${user.username} (${s.factors} factor${s.factors > 1 ? 's' : ''})`;
}

function fromToken(ctx: DecisionContext, look: Lookups, value: string): string {
  const t = look.token(value);
  const ip = ctx.target.clientIp;
  if (!t) {
    look.failure(ip);
    return 'invalid API token';
  }
  if (t.expiresAt !== null && t.expiresAt <= look.now()) return 'API token expired';
  if (t.adminScope) return 'panel API tokens do not open published hosts';
  if (t.origin === 'sso' && look.ssoEnabled?.() === false) return 'API token minted through single sign-on, which is off';
  if (t.hosts.length && !t.hosts.includes(ctx.target.host)) {
    look.failure(ip);
    return 'API token not valid for this host';
  }
  const user = look.user(t.userId);
  if (!user || user.disabled) return 'API token owner disabled';
  // A token stands for the sign-in that created it (operator and CLI tokens: both factors), only where the host opts in.
  ctx.identity = { ...who(user, t.factors, 'token'), tokenId: t.id };
  return `API token #${t.id} of ${user.username}`;
}

async function fromBasic(ctx: DecisionContext, look: Lookups, encoded: string): Promise<string> {
  let decoded: string;
  try {
    decoded = Buffer.from(encoded, 'base64').toString('utf8');
  } catch {
    return 'malformed Basic credentials';
  }
  const colon = decoded.indexOf(':');
  if (colon < 1) return 'malformed Basic credentials';
  const username = decoded.slice(0, colon).toLowerCase();
  const userId = await look.basic(username, decoded.slice(colon + 1), ctx.target.clientIp);
  if (userId === null) return 'Basic credentials refused';
  const user = look.user(userId);
  if (!user || user.disabled) return 'Basic credentials refused';
  if (user.hasTotp) return `${user.username} has TOTP: Basic is refused, use an API token`;
  ctx.identity = who(user, 1, 'basic');
  return `Basic credentials of ${user.username}`;
}

/** After the session (if any): a Bearer token or Basic credentials on hosts that accept them. */
function fromAuthorization(ctx: DecisionContext, look: Lookups, notes: string[]): Outcome | Promise<Outcome> {
  const auth = ctx.target.authorization;
  const host = ctx.host;
  if (auth && host) {
    const m = /^(Bearer|Basic)\s+(\S+)$/i.exec(auth.trim());
    const scheme = m?.[1]!.toLowerCase();
    if (!m) notes.push('unsupported Authorization header');
    else if (scheme === 'bearer') notes.push(host.allowTokens ? fromToken(ctx, look, m[2]!) : 'API tokens not accepted on this host');
    else if (!host.allowBasic) notes.push('Basic not accepted on this host');
    else {
      return fromBasic(ctx, look, m[2]!).then((note) => {
        notes.push(note);
        return cont(notes.join('; '));
      });
    }
  }
  if (!notes.length) notes.push('no credentials');
  return cont(notes.join('; '));
}

function afterSession(ctx: DecisionContext, look: Lookups, s: Session | null): Outcome | Promise<Outcome> {
  const note = fromSession(ctx, look, s);
  return ctx.identity ? cont(note) : fromAuthorization(ctx, look, [note]);
}

export const credentialsCheck: Check = {
  name: 'credentials',
  // Synchronous for a cached session (the /verify hot path); a cache miss, Basic or a handoff make it a Promise.
  run(ctx, look) {
    const token = ctx.target.sessionToken;
    if (!token) return fromAuthorization(ctx, look, []);
    const s = look.session(token);
    return s instanceof Promise ? s.then((x) => afterSession(ctx, look, x)) : afterSession(ctx, look, s);
  },
};
