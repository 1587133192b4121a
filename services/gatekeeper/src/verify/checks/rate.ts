/** rate: the client's token bucket for this host (IPv4 address or IPv6 /64). Over the limit → 429. */
import type { Check } from './check.ts';
import { cont } from '../verdict.ts';

export const rateCheck: Check = {
  name: 'rate',
  run(ctx, look) {
    const r = look.rate(ctx.host, ctx.target.clientIp);
    if (r.ok) return cont('within limit');
    return { decided: { kind: 'rate_limited', reason: 'rate_limited', retryAfterS: r.retryAfterS }, note: `retry after ${r.retryAfterS}s` };
  },
};
