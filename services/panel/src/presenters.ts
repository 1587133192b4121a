/**
 * Presenters: what pages and the JSON API show of a record. Users go through the shared `presentUser`
 * (never hashes or TOTP seeds); these cover hosts, audit entries and settings.
 */
import type { AuditRow } from '@argos/shared/audit';
import { formatRate } from '@argos/shared/commands/hosts';
import { domainCovers, normalizeHost } from '@argos/shared/hostname';
import type { Host, HostInput } from '@argos/shared/repos/hosts';
import type { User } from '@argos/shared/repos/users';
import { SETTINGS, formatSetting, type SettingKey, type SettingsMap } from '@argos/shared/settings';

/** A host as the API returns it: the same field names (and rate text) that create/update accept. */
export function presentHost(h: Host) {
  return {
    domain: h.domain,
    upstreams: h.upstreams,
    policy: h.policy,
    tlsMode: h.tlsMode,
    enabled: h.enabled,
    upstreamTlsVerify: h.upstreamTlsVerify,
    allowedUsers: h.allowedUsers,
    allowedGroups: h.allowedGroups,
    allowBasic: h.allowBasic,
    allowTokens: h.allowTokens,
    geoMode: h.geoMode,
    geoCountries: h.geoCountries,
    geoLan: h.geoLan,
    geoUnknown: h.geoUnknown,
    rateLimit: formatRate(h) || null,
    rateBurst: h.rateBurst,
    rules: h.rules.map((r) => ({ id: r.id, policy: r.policy, paths: r.paths, methods: r.methods, networks: r.networks })),
    createdAt: h.createdAt,
    updatedAt: h.updatedAt,
  };
}

/** The host form's fields as text, exactly as the form posts them back. */
export interface HostForm {
  domain: string;
  upstreams: string;
  policy: string;
  tlsMode: string;
  enabled: boolean;
  upstreamTlsVerify: boolean;
  allowedUsers: string;
  allowedGroups: string;
  allowTokens: boolean;
  allowBasic: boolean;
  geoMode: string;
  geoCountries: string;
  geoLan: string;
  geoUnknown: string;
  rateLimit: string;
  rateBurst: string;
}

export function hostForm(h: HostInput): HostForm {
  return {
    domain: h.domain,
    upstreams: h.upstreams.join('\n'),
    policy: h.policy,
    tlsMode: h.tlsMode,
    enabled: h.enabled,
    upstreamTlsVerify: h.upstreamTlsVerify,
    allowedUsers: h.allowedUsers.join(', '),
    allowedGroups: h.allowedGroups.join(', '),
    allowTokens: h.allowTokens,
    allowBasic: h.allowBasic,
    geoMode: h.geoMode,
    geoCountries: h.geoCountries.join(', '),
    geoLan: h.geoLan,
    geoUnknown: h.geoUnknown,
    rateLimit: formatRate(h),
    rateBurst: h.rateBurst === null ? '' : String(h.rateBurst),
  };
}

/** The user edit form's fields as text. */
export interface UserForm {
  username: string;
  email: string;
  displayName: string;
  groups: string;
  isAdmin: boolean;
  disabled: boolean;
}

export function userForm(u: User): UserForm {
  return {
    username: u.username,
    email: u.email ?? '',
    displayName: u.displayName ?? '',
    groups: u.groups.join(', '),
    isAdmin: u.isAdmin,
    disabled: u.disabled,
  };
}

/** The cookie domains visitor sessions use: the setting, or the parent domain of the portal. */
export function effectiveCookieDomains(settings: Pick<SettingsMap, 'cookie.domains'>, fallback: string): string[] {
  return settings['cookie.domains'].length ? settings['cookie.domains'] : [fallback];
}

/**
 * A warning when a host that needs sign-in is outside every visitor cookie domain: the portal's session
 * cookie would never reach it, so visitors would loop back to the login page.
 */
export function cookieWarning(domainRaw: string, policy: string, cookieDomains: readonly string[]): string | null {
  const domain = normalizeHost(domainRaw);
  if (!domain || (policy !== 'one_factor' && policy !== 'two_factor')) return null;
  if (cookieDomains.some((d) => domainCovers(d, domain))) return null;
  return (
    `${domain} is not under a visitor cookie domain (${cookieDomains.join(', ')}): sign-in still reaches it through a one-time handoff ` +
    '(one extra redirect, and a separate session for that host). Add its parent domain to the cookie.domains setting to share one sign-in.'
  );
}

export function presentAudit(r: AuditRow) {
  let details: unknown = r.details;
  try {
    details = JSON.parse(r.details);
  } catch {
    /* keep the text */
  }
  return { id: r.id, ts: r.ts, actor: r.actor, action: r.action, target: r.target, ip: r.ip, userAgent: r.user_agent, details, hash: r.hash };
}

/** Every setting with its current and default value as operator text, and its help. */
export function presentSettings(values: SettingsMap) {
  return (Object.keys(SETTINGS) as SettingKey[]).map((key) => {
    const def = SETTINGS[key];
    const value = formatSetting(key, values[key]);
    const dflt = formatSetting(key, def.default);
    return { key, kind: def.kind, help: def.help, value, default: dflt, isDefault: value === dflt };
  });
}
