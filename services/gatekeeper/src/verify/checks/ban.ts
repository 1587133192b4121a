/** ban: a client banned by CrowdSec or by Argos's login regulation gets nothing, first in the pipeline. */
import type { Check } from './check.ts';
import { cont, deny } from '../verdict.ts';

export const banCheck: Check = {
  name: 'ban',
  run(ctx, look) {
    const ban = look.ban(ctx.target.clientIp);
    if (!ban) return cont('no ban');
    // A login-regulation ban is temporary and known to end: answer 429 with Retry-After (issue 4), not a bare 403.
    if (ban.source === 'regulation' && ban.untilMs !== null) {
      const retryAfterS = Math.max(1, Math.ceil((ban.untilMs - look.now()) / 1000));
      return { decided: { kind: 'rate_limited', reason: 'regulation_ban', retryAfterS }, note: `${ban.reason}: retry after ${retryAfterS}s` };
    }
    return deny(ban.source === 'crowdsec' ? 'crowdsec_ban' : 'regulation_ban', ban.reason);
  },
};
