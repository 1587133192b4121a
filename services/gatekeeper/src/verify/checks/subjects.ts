/** subjects: the host's allowed users and groups (any listed user or member of a listed group; empty = anyone logged in). */
import type { Check } from './check.ts';
import { allow, deny } from '../verdict.ts';

export const subjectsCheck: Check = {
  name: 'subjects',
  run(ctx) {
    const host = ctx.host;
    const id = ctx.identity;
    if (!host || !id) return deny('no_identity');
    if (!host.allowedUsers.length && !host.allowedGroups.length) return allow('authenticated', id, 'any logged-in user');
    if (host.allowedUsers.includes(id.username)) return allow('user_allowed', id, `user ${id.username} listed`);
    const g = id.groups.find((x) => host.allowedGroups.includes(x));
    if (g) return allow('group_allowed', id, `member of ${g}`);
    return deny('subject_not_allowed', `${id.username} is not listed`);
  },
};
