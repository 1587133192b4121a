/** Panel policies: what an operator may not do to their own account from the panel (it would lock them out). */
import { CommandError } from '@argos/shared/commands/hosts';
import { normalizeUsername, type User } from '@argos/shared/repos/users';

const truthy = (v: unknown) => v === true || (typeof v === 'string' && ['1', 'true', 'on', 'yes'].includes(v.toLowerCase()));
const falsy = (v: unknown) => v === false || (typeof v === 'string' && ['0', 'false', 'off', 'no', ''].includes(v.toLowerCase()));

/** Refuses removing one's own admin rights, disabling or deleting oneself: another admin must do it. */
export function assertNotSelfLockout(operator: User, username: string, change: { isAdmin?: unknown; disabled?: unknown; delete?: boolean }): void {
  if (normalizeUsername(username) !== operator.username) return;
  if (change.delete) throw new CommandError('You cannot delete your own account; ask another admin.', 409);
  if (change.isAdmin !== undefined && falsy(change.isAdmin)) {
    throw new CommandError('You cannot remove your own admin rights; ask another admin.', 409, { isAdmin: 'You cannot remove your own admin rights.' });
  }
  if (change.disabled !== undefined && truthy(change.disabled)) {
    throw new CommandError('You cannot disable your own account; ask another admin.', 409, { disabled: 'You cannot disable your own account.' });
  }
}
