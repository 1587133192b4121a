/**
 * Operator settings stored in the database: a typed registry (key → kind, default, help),
 * parsing from text (CLI, forms) with clear errors, and the repository functions.
 * Secrets are not settings: see secrets.ts.
 */
import type { Queryable } from './db/sqlite.ts';
import type { AuditedTx } from './audit.ts';
import { normalizeHost } from './hostname.ts';

type Kind = 'int' | 'bool' | 'string' | 'list' | 'duration' | 'domains' | 'enum';

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
  'portal.title': { kind: 'string', default: 'Argos', help: 'Title shown on the visitor login portal.' },
  'totp.self_enroll': { kind: 'bool', default: true, help: 'Visitors may enroll TOTP themselves when a two_factor host asks for it.' },
  'panel.require_2fa': { kind: 'bool', default: false, help: 'Panel admins must have TOTP to sign in.' },
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
    case 'list':
      return { ok: true, value: splitList(text) };
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
