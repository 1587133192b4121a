/**
 * Input schemas: turn a form post or a JSON body into the text-friendly fields the shared commands
 * validate. Shapes only (types, known keys); the meaning of each value is checked by the commands,
 * so the panel, the API and the CLI refuse the same things with the same messages.
 */
import { CommandError, type FieldErrors, type HostFields } from '@argos/shared/commands/hosts';
import type { UserFields } from '@argos/shared/commands/users';
import type { AuditFilter } from '@argos/shared/audit';
import type { HostForm, UserForm } from './presenters.ts';
import { str } from './web.ts';

const checked = (v: unknown) => str(v) !== '';

/** The host form post (checkbox absent = off). */
export function hostFormFromBody(b: Record<string, unknown>): HostForm {
  return {
    domain: str(b.domain).trim(),
    upstreams: str(b.upstreams),
    policy: str(b.policy),
    tlsMode: str(b.tlsMode),
    enabled: checked(b.enabled),
    upstreamTlsVerify: checked(b.upstreamTlsVerify),
    allowedUsers: str(b.allowedUsers),
    allowedGroups: str(b.allowedGroups),
    allowTokens: checked(b.allowTokens),
    allowBasic: checked(b.allowBasic),
    geoMode: str(b.geoMode) || 'inherit',
    geoCountries: str(b.geoCountries),
    geoLan: str(b.geoLan) || 'allow',
    geoUnknown: str(b.geoUnknown) || 'allow',
    rateLimit: str(b.rateLimit),
    rateBurst: str(b.rateBurst),
  };
}

/** The user form post: profile fields (and username on create). */
export function userFormFromBody(b: Record<string, unknown>): UserForm {
  return {
    username: str(b.username).trim(),
    email: str(b.email),
    displayName: str(b.displayName),
    groups: str(b.groups),
    isAdmin: checked(b.isAdmin),
    disabled: checked(b.disabled),
  };
}

type Kind = 'string' | 'list' | 'bool' | 'nullableString' | 'nullableInt';

const KIND_CHECK: Record<Kind, [(v: unknown) => boolean, string]> = {
  string: [(v) => typeof v === 'string', 'must be a string'],
  list: [(v) => typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')), 'must be a string or an array of strings'],
  bool: [(v) => typeof v === 'boolean' || typeof v === 'string', 'must be true or false'],
  nullableString: [(v) => v === null || typeof v === 'string', 'must be a string or null'],
  nullableInt: [(v) => v === null || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)), 'must be a number or null'],
};

/** Checks a JSON object's field types against a spec; read-only keys (from GET responses) are ignored. */
function fromJson(b: unknown, spec: Record<string, Kind>, readOnly: readonly string[]): Record<string, unknown> {
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw new CommandError('expected a JSON object', 400);
  const out: Record<string, unknown> = {};
  const errors: FieldErrors = {};
  for (const [k, v] of Object.entries(b)) {
    if (readOnly.includes(k)) continue;
    const kind = Object.hasOwn(spec, k) ? spec[k] : undefined;
    if (!kind) errors[k] = 'unknown field';
    else if (v !== undefined) {
      const [ok, problem] = KIND_CHECK[kind];
      if (ok(v)) out[k] = v;
      else errors[k] = problem;
    }
  }
  if (Object.keys(errors).length) throw new CommandError('invalid request body', 400, errors);
  return out;
}

const HOST_SPEC: Record<keyof HostFields, Kind> = {
  domain: 'string',
  upstreams: 'list',
  policy: 'string',
  tlsMode: 'string',
  enabled: 'bool',
  upstreamTlsVerify: 'bool',
  allowedUsers: 'list',
  allowedGroups: 'list',
  allowBasic: 'bool',
  allowTokens: 'bool',
  geoMode: 'string',
  geoCountries: 'list',
  geoLan: 'string',
  geoUnknown: 'string',
  rateLimit: 'nullableString',
  rateBurst: 'nullableInt',
};

/** A host in JSON (POST: a new host; PUT: only the fields to change). */
export function hostFieldsFromJson(b: unknown): HostFields {
  return fromJson(b, HOST_SPEC, ['rules', 'createdAt', 'updatedAt']) as HostFields;
}

const USER_SPEC: Record<keyof UserFields, Kind> = {
  username: 'string',
  password: 'string',
  email: 'nullableString',
  displayName: 'nullableString',
  groups: 'list',
  isAdmin: 'bool',
  disabled: 'bool',
};
const USER_READ_ONLY = ['totp', 'sso', 'lastLoginAt', 'createdAt'];

export function newUserFromJson(b: unknown): UserFields {
  return fromJson(b, USER_SPEC, USER_READ_ONLY) as UserFields;
}

/** A user update in JSON: profile and flags; the username is fixed and passwords have their own endpoint. */
export function userUpdateFromJson(b: unknown, username: string): UserFields {
  const f = fromJson(b, USER_SPEC, USER_READ_ONLY) as UserFields;
  if (f.username !== undefined && f.username.trim().toLowerCase() !== username)
    throw new CommandError('usernames cannot be changed', 400, { username: 'usernames cannot be changed' });
  if (f.password !== undefined)
    throw new CommandError('set passwords with POST /api/v1/users/:username/password', 400, { password: 'use the password endpoint' });
  delete f.username;
  return f;
}

export function passwordFromJson(b: unknown): { password: string; mustChange: boolean } {
  const f = fromJson(b, { password: 'string', mustChange: 'bool' }, []);
  const mustChange = f.mustChange === true || (typeof f.mustChange === 'string' && ['1', 'true', 'on', 'yes'].includes(f.mustChange.toLowerCase()));
  return { password: typeof f.password === 'string' ? f.password : '', mustChange };
}

/** A setting's new value: operator text, or a JSON scalar/array that is turned into text. */
export function settingValueFromJson(b: unknown): string {
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw new CommandError('expected a JSON object {"value": "..."}', 400);
  const v = (b as Record<string, unknown>).value;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.join(',');
  throw new CommandError('value must be a string', 400, { value: 'must be a string' });
}

const text = (v: unknown, max = 200) => (typeof v === 'string' ? v.trim().slice(0, max) : '');
const int = (v: unknown, min: number, max: number, dflt: number) => {
  const n = typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) ? Math.min(max, Math.max(min, n)) : dflt;
};

export const AUDIT_PAGE = 100;

/** The audit page's query: filters and a 1-based page number. */
export function auditPageQuery(q: Record<string, unknown>): { actor: string; action: string; target: string; page: number } {
  return { actor: text(q.actor), action: text(q.action), target: text(q.target), page: int(q.page, 1, 100_000, 1) };
}

/** The audit API's query: filters, time range (ms) and paging. */
export function auditApiQuery(q: Record<string, unknown>): AuditFilter {
  const f: AuditFilter = { limit: int(q.limit, 1, 10_000, AUDIT_PAGE), offset: int(q.offset, 0, Number.MAX_SAFE_INTEGER, 0) };
  if (text(q.actor)) f.actor = text(q.actor);
  if (text(q.action)) f.action = text(q.action);
  if (text(q.target)) f.target = text(q.target);
  if (q.since !== undefined) f.since = int(q.since, 0, Number.MAX_SAFE_INTEGER, 0);
  if (q.until !== undefined) f.until = int(q.until, 0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  return f;
}
