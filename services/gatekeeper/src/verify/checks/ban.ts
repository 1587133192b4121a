/** ban: a client banned by CrowdSec or by Argos's login regulation gets nothing, first in the pipeline. */
import type { Check } from './check.ts';
import { cont, deny } from '../verdict.ts';

export const banCheck: Check = {
  name: 'ban',
  run(ctx, look) {
    const ban = look.ban(ctx.target.clientIp);
    if (!ban) return cont('no ban');
    return deny(ban.source === 'crowdsec' ? 'crowdsec_ban' : 'regulation_ban', ban.reason);
  },
};
