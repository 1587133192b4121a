/** factors: does the identity meet the policy? bypass passes anyone; one_factor needs a login; two_factor a second factor. */
import type { Check } from './check.ts';
import { allow, cont, deny, login } from '../verdict.ts';

export const factorsCheck: Check = {
  name: 'factors',
  run(ctx) {
    const id = ctx.identity;
    switch (ctx.policy) {
      case 'bypass':
        return allow('bypass', id, 'no login required');
      case 'one_factor':
        return id ? cont('logged in') : login('not_authenticated');
      case 'two_factor':
        if (!id) return login('not_authenticated');
        return id.factors >= 2 ? cont('second factor done') : deny('second_factor_required', 'session has one factor');
      default:
        return deny('no_policy');
    }
  },
};
