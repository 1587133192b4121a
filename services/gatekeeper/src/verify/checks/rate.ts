/** rate: the client's token bucket for this host (IPv4 address or IPv6 /64). Over the limit → 429 with Retry-After. */
import type { Check } from './check.ts';
import { cont } from '../verdict.ts';

export const rateCheck: Check = {
  name: 'rate',
  run(ctx, look) {
    const r = look.rate(ctx.host, ctx.target.clientIp);
    const limit = r.limit ? ` (${r.limit})` : '';
    if (r.ok) return cont(r.limit ? `within limit${limit}` : 'no limit');
    return { decided: { kind: 'rate_limited', reason: 'rate_limited', retryAfterS: r.retryAfterS }, note: `over the limit${limit}: retry after ${r.retryAfterS}s` };
  },
};
