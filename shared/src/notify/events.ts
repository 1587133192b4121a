/**
 * The notification events: which audit actions each one covers, and whether it is on by default for e-mail and
 * for the webhook. Notifications are driven by the audit log alone (the panel's notifier tails it), so no other
 * module ever calls the notifier: a new audited action only needs a line here to become notifiable.
 */

export interface NotifyEventDef {
  key: string;
  /** What the operator sees next to the toggle. */
  label: string;
  /** Subject prefix of a single message. */
  title: string;
  email: boolean;
  webhook: boolean;
}

export const NOTIFY_EVENTS = [
  { key: 'ban', label: 'Login ban triggered (IP or user)', title: 'Login ban', email: true, webhook: true },
  { key: 'new_country', label: "A user's first sign-in from a new country", title: 'Sign-in from a new country', email: true, webhook: true },
  { key: 'admin_login', label: 'Panel admin signed in', title: 'Panel sign-in', email: true, webhook: false },
  { key: '2fa_reset', label: 'Two-factor authentication disabled or reset', title: '2FA reset', email: true, webhook: true },
  { key: 'token_created', label: 'API token created', title: 'API token created', email: true, webhook: true },
  { key: 'backup_ok', label: 'Backup succeeded', title: 'Backup made', email: false, webhook: false },
  { key: 'backup_failed', label: 'Backup failed', title: 'Backup FAILED', email: true, webhook: true },
  { key: 'geo_failed', label: 'Country database update failed', title: 'Geo database update failed', email: true, webhook: true },
  { key: 'crowdsec', label: 'CrowdSec unreachable or back', title: 'CrowdSec', email: true, webhook: true },
  { key: 'caddy', label: 'Caddy config apply failed or drift detected', title: 'Caddy', email: true, webhook: true },
  { key: 'master_key', label: 'Master key rotated', title: 'Master key rotated', email: true, webhook: true },
  { key: 'restore', label: 'Backup restored', title: 'Backup restored', email: true, webhook: true },
] as const satisfies readonly NotifyEventDef[];

export type NotifyEventKey = (typeof NOTIFY_EVENTS)[number]['key'];
export const NOTIFY_EVENT_KEYS: readonly NotifyEventKey[] = NOTIFY_EVENTS.map((e) => e.key);
export const DEFAULT_EMAIL_EVENTS: NotifyEventKey[] = NOTIFY_EVENTS.filter((e) => e.email).map((e) => e.key);
export const DEFAULT_WEBHOOK_EVENTS: NotifyEventKey[] = NOTIFY_EVENTS.filter((e) => e.webhook).map((e) => e.key);

export const eventDef = (key: string): NotifyEventDef | undefined => NOTIFY_EVENTS.find((e) => e.key === key);

/** Audit actions of a successful sign-in (the input of the new-country check). */
export const LOGIN_ACTIONS = ['portal.login.success', 'panel.login.success'] as const;

/**
 * The event an audit action raises, or null. `new_country` is not here: it depends on the sign-in's country
 * (see the notifier). Backup and CrowdSec actions are matched by prefix/suffix so variants added later still count.
 */
export function eventForAction(action: string): NotifyEventKey | null {
  if (action === 'regulation.ban' || action.startsWith('crowdsec.ban')) return 'ban';
  if (action === 'panel.login.success') return 'admin_login';
  if (action === 'user.2fa.reset' || action.startsWith('user.2fa.disable')) return '2fa_reset';
  if (action === 'token.create') return 'token_created';
  if (action === 'backup.restore') return 'restore';
  if (action.startsWith('backup.') && action.endsWith('.failed')) return 'backup_failed';
  if (action === 'backup.create') return 'backup_ok';
  if (action === 'geo.update.failed') return 'geo_failed';
  if (['crowdsec.unreachable', 'crowdsec.reachable', 'crowdsec.stale', 'crowdsec.recovered'].includes(action)) return 'crowdsec';
  if (action === 'caddy.drift' || (action.startsWith('caddy.') && action.endsWith('.failed'))) return 'caddy';
  if (action === 'system.master_key.rotate') return 'master_key';
  return null;
}
