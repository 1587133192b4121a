/**
 * credentials: resolves who is asking from the session cookie. Never decides by itself: a missing or
 * dead credential leaves the identity empty, and the factors check decides what that means for the policy.
 */
import type { Check } from './check.ts';
import { sessionAlive } from '@argos/shared/repos/sessions';
import { cont } from '../verdict.ts';

export const credentialsCheck: Check = {
  name: 'credentials',
  async run(ctx, look) {
    const token = ctx.target.sessionToken;
    if (!token) return cont(ctx.target.authorization ? 'Authorization header not accepted on this host' : 'no session cookie');
    const s = await look.session(token);
    if (!s || s.kind !== 'portal') return cont('unknown session');
    if (!sessionAlive(s, look.now())) return cont(s.revokedAt ? 'session revoked' : 'session expired');
    const user = look.user(s.userId);
    if (!user) return cont('session user no longer exists');
    if (user.disabled) return cont(`user ${user.username} is disabled`);
    ctx.identity = {
      userId: user.id,
      username: user.username,
      email: user.email,
      name: user.displayName,
      groups: user.groups,
      factors: s.factors,
      via: 'session',
      sessionId: s.id,
    };
    return cont(`session of ${user.username} (${s.factors} factor${s.factors > 1 ? 's' : ''})`);
  },
};
