/**
 * factors: does the identity meet the policy? bypass passes anyone; one_factor needs a login; two_factor needs a
 * completed second factor. A user without TOTP meeting a two_factor host is sent to enrollment when the operator
 * allows self-enrollment, otherwise refused. A password-only state never passes: it is not a session.
 */
import type { Check } from './check.ts';
import { allow, cont, deny, login } from '../verdict.ts';

export const factorsCheck: Check = {
  name: 'factors',
  run(ctx, look) {
    const id = ctx.identity;
    switch (ctx.policy) {
      case 'bypass':
        return allow('bypass', id, 'no login required');
      case 'one_factor':
        return id ? cont('logged in') : login('not_authenticated');
      case 'two_factor': {
        if (!id) return login('not_authenticated');
        if (id.factors >= 2) return cont('second factor done');
        const user = look.user(id.userId);
        if (id.via === 'session' && user && !user.hasTotp && look.selfEnroll()) {
          return { decided: { kind: 'enroll', reason: 'second_factor_enrollment' }, note: `${id.username} has no TOTP: enrollment offered` };
        }
        return deny('second_factor_required', `${id.via} with one factor`);
      }
      default:
        return deny('no_policy');
    }
  },
};
