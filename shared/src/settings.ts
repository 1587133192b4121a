/**
 * Operator settings stored in the database: a typed registry (key → kind, default, help),
 * parsing from text (CLI, forms) with clear errors, and the repository functions.
 * Secrets are not settings: see secrets.ts.
 */
import type { Queryable } from './db/sqlite.ts';
import type { AuditedTx } from './audit.ts';
import { normalizeHost } from './hostname.ts';
import { DEFAULT_EMAIL_EVENTS, DEFAULT_WEBHOOK_EVENTS, NOTIFY_EVENT_KEYS } from './notify/events.ts';

type Kind = 'int' | 'bool' | 'string' | 'list' | 'duration' | 'domains' | 'enum' | 'rate' | 'url' | 'countries';

interface Def {
  kind: Kind;
  default: unknown;
  help: string;
  min?: number;
  max?: number;
  values?: readonly string[];
}

const DAY = 86_400;

/** Every setting Argos knows. Durations are stored in seconds. */
export const SETTINGS = {
  'cookie.domains': { kind: 'domains', default: [], help: 'Cookie domains for visitor sessions (comma-separated). Empty = the parent domain of ARGOS_PORTAL_URL.' },
  'session.idle_timeout': { kind: 'duration', default: 12 * 3600, min: 60, max: 90 * DAY, help: 'A visitor session ends after this long without a request (e.g. 30m, 12h).' },
  'session.lifetime': { kind: 'duration', default: 7 * DAY, min: 300, max: 365 * DAY, help: 'Absolute lifetime of a visitor session.' },
  'session.remember_lifetime': { kind: 'duration', default: 30 * DAY, min: 300, max: 365 * DAY, help: 'Absolute lifetime when "remember me" is ticked.' },
  'panel.session_lifetime': { kind: 'duration', default: 12 * 3600, min: 300, max: 30 * DAY, help: 'Absolute lifetime of an operator panel session.' },
  'panel.idle_timeout': { kind: 'duration', default: 3600, min: 60, max: 30 * DAY, help: 'A panel session ends after this long without a request.' },
  'regulation.max_failures': { kind: 'int', default: 5, min: 1, max: 1000, help: 'Failed logins allowed per client (IP, IPv6 /64) within the window before a ban.' },
  'regulation.window': { kind: 'duration', default: 300, min: 10, max: DAY, help: 'Window in which failed logins are counted.' },
  'regulation.ban_time': { kind: 'duration', default: 900, min: 10, max: 30 * DAY, help: 'First ban length; it doubles on each repeat, up to a day.' },
  'decision_log.retention': { kind: 'duration', default: 14 * DAY, min: 3600, max: 365 * DAY, help: 'How long decision log entries are kept.' },
  'audit.retention': { kind: 'duration', default: 365 * DAY, min: DAY, max: 10 * 365 * DAY, help: 'How long audit entries are kept (the chain stays verifiable).' },
  'backup.schedule': { kind: 'enum', default: 'daily', values: ['off', 'hourly', 'daily', 'weekly'], help: 'How often the panel makes a backup by itself (off, hourly, daily, weekly).' },
  'backup.keep': { kind: 'int', default: 14, min: 1, max: 1000, help: 'How many backups to keep in the backups folder; older ones are deleted (the newest is always kept).' },
  'portal.title': { kind: 'string', default: 'Argos', help: 'Title shown on the visitor login portal.' },
  'totp.self_enroll': { kind: 'bool', default: true, help: 'Visitors may enroll TOTP themselves when a two_factor host asks for it.' },
  'panel.require_2fa': { kind: 'bool', default: false, help: 'Panel admins must have TOTP to sign in.' },
  'geo.update_url': {
    kind: 'url',
    default: 'https://download.db-ip.com/free/dbip-country-lite-{YYYY}-{MM}.mmdb.gz',
    help: 'Where `argos geo update` downloads the country database (.mmdb or .mmdb.gz; {YYYY} and {MM} are this month, falling back to the previous one). Empty = never download.',
  },
  'geo.auto_update': { kind: 'bool', default: true, help: 'Download a fresh country database once a month.' },
  'geo.default_mode': { kind: 'enum', default: 'off', values: ['off', 'allow', 'deny'], help: 'Country rule for hosts that inherit (and the portal/panel): off, allow (only the listed countries) or deny (all but the listed).' },
  'geo.default_countries': { kind: 'countries', default: [], help: 'ISO country codes of the global rule (comma-separated, e.g. DE,FR).' },
  'geo.default_lan': { kind: 'enum', default: 'allow', values: ['allow', 'deny'], help: 'Global rule: private, loopback, link-local and CGNAT addresses (the pseudo-country LAN).' },
  'geo.default_unknown': { kind: 'enum', default: 'allow', values: ['allow', 'deny'], help: 'Global rule: addresses the country database does not know.' },
  'rate.default_limit': { kind: 'rate', default: '50/s', help: 'Requests per client (IPv4 address, IPv6 /64) for hosts without their own limit, the portal, the panel and unknown hosts: N/s, N/min, N/h, or off.' },
  'rate.default_burst': { kind: 'int', default: 200, min: 1, max: 1_000_000, help: 'Burst allowed above the default limit (requests a client may make at once).' },
  'crowdsec.url': { kind: 'url', default: '', help: 'CrowdSec Local API URL (e.g. http://127.0.0.1:8080). ARGOS_CROWDSEC_URL wins when set. Empty = no CrowdSec.' },
  'crowdsec.pull_interval': { kind: 'duration', default: 5, min: 1, max: 3600, help: 'How often the gatekeeper pulls new and deleted CrowdSec decisions.' },
  'crowdsec.captcha_as_ban': { kind: 'bool', default: true, help: 'Treat CrowdSec captcha decisions as bans (Argos cannot show a captcha).' },
  'crowdsec.machine_id': { kind: 'string', default: 'argos', help: 'CrowdSec machine name Argos pushes its own login bans with (password: secret crowdsec.machine_password).' },
  'crowdsec.push_bans': { kind: 'bool', default: true, help: "Push Argos's login-regulation bans to CrowdSec as alerts (needs the machine password secret)." },
  'oidc.enabled': { kind: 'bool', default: false, help: 'Offer single sign-on with an external OpenID Connect provider (portal and panel). ARGOS_OIDC_ENABLED=false turns it off whatever this says. Set it up in the panel under Settings → Single sign-on.' },
  'oidc.issuer': { kind: 'url', default: '', help: "The provider's issuer URL, exactly as it advertises it (https; http only on loopback), e.g. https://accounts.google.com." },
  'oidc.client_id': { kind: 'string', default: '', help: 'The client ID registered at the provider (the secret is the secret oidc.client_secret).' },
  'oidc.scopes': { kind: 'string', default: 'openid email profile', help: 'Scopes requested at sign-in (space-separated; openid is always included). Add groups when the provider needs it for the groups claim.' },
  'oidc.allowed_domains': { kind: 'domains', default: [], help: 'Only e-mail addresses in these domains may sign in with SSO (exact domains, comma-separated). Empty (and no allowed e-mails) = any address.' },
  'oidc.allowed_emails': { kind: 'list', default: [], help: 'Only these e-mail addresses may sign in with SSO (besides allowed domains). Empty (and no allowed domains) = any address.' },
  'oidc.auto_provision': { kind: 'bool', default: false, help: 'Create an Argos user (never an admin) the first time someone the allow-lists accept signs in with SSO.' },
  'oidc.require_email_verified': { kind: 'bool', default: true, help: 'Refuse SSO sign-ins whose e-mail address the provider does not mark as verified (email_verified).' },
  'oidc.groups_claim': { kind: 'string', default: 'groups', help: "Claim holding the user's groups at the provider; when present it replaces the Argos groups of SSO users at each sign-in. Empty = groups are managed in Argos." },
  'oidc.link_existing': { kind: 'bool', default: false, help: 'Link a first SSO sign-in to the existing Argos user with the same verified e-mail address (never to an admin).' },
  'oidc.trust_idp_mfa': { kind: 'bool', default: true, help: "An SSO sign-in counts as two factors when the provider asserts MFA (amr/acr). Otherwise, and always when false, users with Argos TOTP enter their code too." },
  'oidc.button_label': { kind: 'string', default: 'Sign in with single sign-on', help: 'Text of the SSO button on the portal and panel sign-in pages (e.g. Sign in with Google).' },
  'oidc.rp_logout': { kind: 'bool', default: false, help: "Signing out of Argos also signs out at the provider (RP-initiated logout), when the provider supports it." },
  // Notifications, traffic and metrics (issue 8)
  'smtp.host': { kind: 'string', default: '', help: 'SMTP relay for notification e-mail (host name or address). Empty = no e-mail. The password is the secret smtp.password.' },
  'smtp.port': { kind: 'int', default: 587, min: 1, max: 65535, help: 'SMTP port: usually 587 with starttls, 465 with tls, 25 with none.' },
  'smtp.tls': { kind: 'enum', default: 'starttls', values: ['none', 'starttls', 'tls'], help: 'SMTP transport security: starttls (upgrade required), tls (implicit TLS from the start) or none (plain; LAN relays only).' },
  'smtp.username': { kind: 'string', default: '', help: 'SMTP login name. Empty = send without authentication.' },
  'smtp.from': { kind: 'string', default: '', help: 'Sender address of notification e-mail, e.g. argos@example.com.' },
  'smtp.to': { kind: 'list', default: [], help: 'Recipients of notification e-mail (comma-separated addresses).' },
  'webhook.url': { kind: 'url', default: '', help: 'Notification webhook: Argos POSTs JSON {event, time, summary, details} here (optional bearer secret webhook.token). Empty = no webhook.' },
  'notify.email_events': { kind: 'list', default: DEFAULT_EMAIL_EVENTS, values: NOTIFY_EVENT_KEYS, help: `Events sent by e-mail (comma-separated): ${NOTIFY_EVENT_KEYS.join(', ')}.` },
  'notify.webhook_events': { kind: 'list', default: DEFAULT_WEBHOOK_EVENTS, values: NOTIFY_EVENT_KEYS, help: `Events sent to the webhook (comma-separated): ${NOTIFY_EVENT_KEYS.join(', ')}.` },
  'notify.group_wait': { kind: 'duration', default: 30, min: 1, max: 3600, help: 'The first event of a kind waits this long for others, so a burst becomes one digest message.' },
  'notify.throttle': { kind: 'duration', default: 900, min: 10, max: DAY, help: 'After a message about an event, further ones of the same kind are held this long and then sent as one digest.' },
  'traffic.retention': { kind: 'duration', default: 7 * DAY, min: 3600, max: 90 * DAY, help: "How long ingested access-log entries (Caddy's traffic) are kept." },
  'metrics.allowed_networks': { kind: 'list', default: ['127.0.0.0/8', '::1/128'], help: "Client networks (CIDRs) allowed to scrape the panel's /metrics without signing in." },
} as const satisfies Record<string, Def>;

export type SettingKey = keyof typeof SETTINGS;
export type SettingValue<K extends SettingKey> = (typeof SETTINGS)[K]['default'] extends readonly unknown[]
  ? string[]
  : (typeof SETTINGS)[K]['default'] extends number
    ? number
    : (typeof SETTINGS)[K]['default'] extends boolean
      ? boolean
      : string;

export const isSettingKey = (k: string): k is SettingKey => Object.hasOwn(SETTINGS, k);

const DURATION = /^(\d+)\s*(s|m|h|d)?$/;

/** Parses "N/s", "N/min" or "N/h" (a rate limit) into a count and window in seconds. */
export function parseRateLimit(raw: string): { limit: number; windowS: number } | null {
  const m = /^(\d{1,7})\s*\/\s*(s|sec|second|m|min|minute|h|hour)$/i.exec(raw.trim());
  if (!m) return null;
  const n = Number(m[1]);
  if (n < 1) return null;
  const unit = m[2]!.toLowerCase();
  return { limit: n, windowS: unit.startsWith('s') ? 1 : unit.startsWith('m') ? 60 : 3600 };
}
const UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: DAY };

export function formatDuration(s: number): string {
  if (s % DAY === 0) return `${s / DAY}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

/** Parses operator text into a setting's value, or returns an error message. */
export function parseSetting(key: string, raw: string): { ok: true; value: unknown } | { ok: false; error: string } {
  if (!isSettingKey(key)) return { ok: false, error: `unknown setting "${key}" (see \`argos settings list\`)` };
  const def: Def = SETTINGS[key];
  const text = raw.trim();
  switch (def.kind) {
    case 'int':
    case 'duration': {
      let n: number;
      if (def.kind === 'int') n = /^-?\d+$/.test(text) ? Number(text) : NaN;
      else {
        const m = DURATION.exec(text);
        n = m ? Number(m[1]) * UNIT[m[2] ?? 's']! : NaN;
      }
      if (!Number.isSafeInteger(n)) return { ok: false, error: `${key}: "${text}" is not ${def.kind === 'int' ? 'a whole number' : 'a duration like 90s, 30m, 12h or 7d'}` };
      if (def.min !== undefined && n < def.min) return { ok: false, error: `${key}: must be at least ${def.kind === 'duration' ? formatDuration(def.min) : def.min}` };
      if (def.max !== undefined && n > def.max) return { ok: false, error: `${key}: must be at most ${def.kind === 'duration' ? formatDuration(def.max) : def.max}` };
      return { ok: true, value: n };
    }
    case 'bool':
      if (['true', '1', 'yes', 'on'].includes(text.toLowerCase())) return { ok: true, value: true };
      if (['false', '0', 'no', 'off'].includes(text.toLowerCase())) return { ok: true, value: false };
      return { ok: false, error: `${key}: "${text}" is not true or false` };
    case 'string':
      if (text.length > 200) return { ok: false, error: `${key}: at most 200 characters` };
      return { ok: true, value: text };
    case 'enum':
      return def.values?.includes(text) ? { ok: true, value: text } : { ok: false, error: `${key}: must be one of ${def.values?.join(', ')}` };
    case 'list': {
      const items = splitList(text);
      // A list with known values (notification events) accepts only those.
      const bad = def.values && items.find((v) => !def.values!.includes(v));
      if (bad) return { ok: false, error: `${key}: "${bad}" is not one of ${def.values!.join(', ')}` };
      return { ok: true, value: def.values ? [...new Set(items)] : items };
    }
    case 'countries': {
      const codes = splitList(text).map((c) => c.toUpperCase());
      const bad = codes.find((c) => !/^[A-Z]{2}$/.test(c));
      if (bad) return { ok: false, error: `${key}: "${bad}" is not a two-letter ISO country code` };
      return { ok: true, value: [...new Set(codes)] };
    }
    case 'rate': {
      if (text.toLowerCase() === 'off') return { ok: true, value: 'off' };
      const r = parseRateLimit(text);
      return r ? { ok: true, value: `${r.limit}/${r.windowS === 1 ? 's' : r.windowS === 60 ? 'min' : 'h'}` } : { ok: false, error: `${key}: "${text}" is not a rate like 50/s, 300/min or 5000/h (or off)` };
    }
    case 'url': {
      if (!text) return { ok: true, value: '' };
      if (text.length > 500) return { ok: false, error: `${key}: at most 500 characters` };
      let u: URL;
      try {
        u = new URL(text.replace(/\{(YYYY|MM)\}/g, '0'));
      } catch {
        return { ok: false, error: `${key}: "${text}" is not a URL` };
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return { ok: false, error: `${key}: must be an http(s) URL` };
      if (u.username || u.password) return { ok: false, error: `${key}: must not contain credentials` };
      return { ok: true, value: text };
    }
    case 'domains': {
      const out: string[] = [];
      for (const d of splitList(text)) {
        const n = normalizeHost(d.replace(/^\./, ''));
        if (!n || n.startsWith('[')) return { ok: false, error: `${key}: "${d}" is not a domain name` };
        if (!n.includes('.')) return { ok: false, error: `${key}: "${d}" is a top-level name; browsers refuse cookies for it` };
        out.push(n);
      }
      return { ok: true, value: [...new Set(out)] };
    }
  }
}

export function splitList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

export function formatSetting(key: SettingKey, value: unknown): string {
  const def: Def = SETTINGS[key];
  if (def.kind === 'duration') return formatDuration(value as number);
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

export type SettingsMap = { [K in SettingKey]: SettingValue<K> };

/** All settings with defaults filled in. Unknown or unparsable stored keys are ignored. */
export async function loadSettings(q: Queryable): Promise<SettingsMap> {
  const out: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(SETTINGS)) out[k] = d.default;
  for (const row of await q.all<{ key: string; value: string }>('SELECT key, value FROM settings')) {
    if (!isSettingKey(row.key)) continue;
    try {
      out[row.key] = JSON.parse(row.value);
    } catch {
      /* keep the default */
    }
  }
  return out as SettingsMap;
}

export async function setSetting(tx: AuditedTx, key: SettingKey, value: unknown, now = Date.now()): Promise<unknown> {
  const prev = await tx.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', [key]);
  await tx.run('INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at', [
    key,
    JSON.stringify(value),
    now,
  ]);
  return prev ? JSON.parse(prev.value) : SETTINGS[key].default;
}
