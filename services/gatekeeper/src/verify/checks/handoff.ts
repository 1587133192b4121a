/**
 * handoff: the reserved path /.argos/handoff on a published host redeems a one-time token from the portal
 * (short TTL, single use, bound to this host and browser) and answers a redirect that sets the session
 * cookie for this host's cookie domain, which the portal could not set across domains.
 */
import type { Check } from './check.ts';
import { cont, deny, type DecisionContext, type Outcome } from '../verdict.ts';
import type { Lookups } from '../lookups.ts';

export const HANDOFF_PATH = '/.argos/handoff';

export const handoffCheck: Check = {
  name: 'handoff',
  run(ctx, look) {
    // Synchronous for every other path (the /verify hot path); only a handoff awaits its redemption.
    if (ctx.target.path !== HANDOFF_PATH) return cont('not a handoff');
    return redeem(ctx, look);
  },
};

async function redeem(ctx: DecisionContext, look: Lookups): Promise<Outcome> {
  const t = new URLSearchParams(ctx.target.query).get('t');
  if (!t) return deny('handoff_invalid', 'no token');
  const r = await look.handoff(t, ctx.target.host, ctx.target.clientIp, ctx.target.userAgent);
  if (!r) return deny('handoff_invalid', 'unknown, used, expired or bound elsewhere');
  return { decided: { kind: 'redirect', reason: 'handoff', location: r.location, setCookie: r.setCookie }, note: 'session cookie handed off' };
}
