/**
 * Host commands: validation with per-field errors, then one audited mutation each.
 * Used by the panel (forms and JSON API) and the CLI, so every path validates and audits the same way.
 */
import type { Database } from '../db/sqlite.ts';
import { mutate, type Actor } from '../audit.ts';
import { normalizeHost } from '../hostname.ts';
import { parseCidr } from '../net.ts';
import {
  POLICIES,
  TLS_MODES,
  createHost,
  createHostRule,
  deleteHost,
  deleteHostRule,
  getHost,
  hostDefaults,
  updateHost,
  type Host,
  type HostInput,
  type HostRule,
  type Policy,
  type TlsMode,
} from '../repos/hosts.ts';
import { GROUP_RE, USERNAME_RE } from '../repos/users.ts';
import { splitList } from '../settings.ts';
import { patternProblem } from '../path-match.ts';
import { CommandError, type FieldErrors } from './errors.ts';

export { CommandError, type FieldErrors };

export type Validated<T> = { ok: true; value: T } | { ok: false; errors: FieldErrors };

/** Text-friendly host fields, as forms, JSON and CLI flags provide them. Missing fields keep their current value. */
export interface HostFields {
  domain?: string;
  upstreams?: string | string[];
  policy?: string;
  tlsMode?: string;
  enabled?: boolean | string;
  upstreamTlsVerify?: boolean | string;
  allowedUsers?: string | string[];
  allowedGroups?: string | string[];
  allowBasic?: boolean | string;
  allowTokens?: boolean | string;
  geoMode?: string;
  geoCountries?: string | string[];
  geoLan?: string;
  geoUnknown?: string;
  rateLimit?: string | null;
  rateBurst?: string | number | null;
}

const list = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v.flatMap(splitList) : splitList(v));
const bool = (v: boolean | string | undefined): boolean | undefined =>
  v === undefined ? undefined : typeof v === 'boolean' ? v : ['1', 'true', 'on', 'yes'].includes(v.toLowerCase());

/** Checks one upstream URL: http(s), a host, optional port, no path, query or credentials. */
export function upstreamProblem(raw: string): string | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return `"${raw}" is not a URL (example: http://10.0.0.5:8096)`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `"${raw}" must start with http:// or https://`;
  if (u.username || u.password) return `"${raw}" must not contain credentials`;
  if ((u.pathname && u.pathname !== '/') || u.search || u.hash) return `"${raw}" must not have a path or query (Caddy proxies to host:port)`;
  if (!normalizeHost(u.host)) return `"${raw}" has an invalid host`;
  return null;
}

/** Parses "N/s", "N/min" or "N/h" into a count and window. */
export function parseRate(raw: string): { limit: number; windowS: number } | null {
  const m = /^(\d{1,7})\s*\/\s*(s|sec|second|m|min|minute|h|hour)$/i.exec(raw.trim());
  if (!m) return null;
  const n = Number(m[1]);
  if (n < 1) return null;
  const unit = m[2]!.toLowerCase();
  return { limit: n, windowS: unit.startsWith('s') ? 1 : unit.startsWith('m') ? 60 : 3600 };
}

export function formatRate(h: Pick<Host, 'rateLimit' | 'rateWindowS'>): string {
  if (!h.rateLimit || !h.rateWindowS) return '';
  return `${h.rateLimit}/${h.rateWindowS === 1 ? 's' : h.rateWindowS === 60 ? 'min' : 'h'}`;
}

/** Merges fields into a base host input and validates the result. */
export function validateHost(fields: HostFields, base: HostInput | null): Validated<HostInput> {
  const errors: FieldErrors = {};
  const domainRaw = fields.domain ?? base?.domain ?? '';
  const domain = normalizeHost(domainRaw);
  if (!domainRaw.trim()) errors.domain = 'Enter the public host name, e.g. app.example.com.';
  else if (!domain || domain.startsWith('[') || !domain.includes('.')) errors.domain = `"${domainRaw}" is not a fully qualified host name.`;

  const upstreams = list(fields.upstreams) ?? base?.upstreams ?? [];
  if (!upstreams.length) errors.upstreams = 'Enter at least one upstream URL, e.g. http://10.0.0.5:8096.';
  else {
    const bad = upstreams.map(upstreamProblem).find(Boolean);
    if (bad) errors.upstreams = bad;
  }
  const h: HostInput = { ...(base ?? hostDefaults(domain ?? '', upstreams)), domain: domain ?? '', upstreams };

  if (fields.policy !== undefined) {
    if (POLICIES.includes(fields.policy as Policy)) h.policy = fields.policy as Policy;
    else errors.policy = `Policy must be one of ${POLICIES.join(', ')}.`;
  }
  if (fields.tlsMode !== undefined) {
    if (TLS_MODES.includes(fields.tlsMode as TlsMode)) h.tlsMode = fields.tlsMode as TlsMode;
    else errors.tlsMode = `TLS mode must be one of ${TLS_MODES.join(', ')}.`;
  }
  h.enabled = bool(fields.enabled) ?? h.enabled;
  h.upstreamTlsVerify = bool(fields.upstreamTlsVerify) ?? h.upstreamTlsVerify;
  h.allowBasic = bool(fields.allowBasic) ?? h.allowBasic;
  h.allowTokens = bool(fields.allowTokens) ?? h.allowTokens;

  const users = list(fields.allowedUsers);
  if (users) {
    const norm = users.map((u) => u.toLowerCase());
    const bad = norm.find((u) => !USERNAME_RE.test(u));
    if (bad) errors.allowedUsers = `"${bad}" is not a valid username.`;
    h.allowedUsers = [...new Set(norm)];
  }
  const groups = list(fields.allowedGroups);
  if (groups) {
    const norm = groups.map((g) => g.toLowerCase());
    const bad = norm.find((g) => !GROUP_RE.test(g));
    if (bad) errors.allowedGroups = `"${bad}" is not a valid group name.`;
    h.allowedGroups = [...new Set(norm)];
  }

  if (fields.geoMode !== undefined) {
    if (['inherit', 'off', 'allow', 'deny'].includes(fields.geoMode)) h.geoMode = fields.geoMode as HostInput['geoMode'];
    else errors.geoMode = 'Country rule must be inherit, off, allow or deny.';
  }
  const countries = list(fields.geoCountries);
  if (countries) {
    const norm = countries.map((c) => c.toUpperCase());
    const bad = norm.find((c) => !/^[A-Z]{2}$/.test(c));
    if (bad) errors.geoCountries = `"${bad}" is not a two-letter ISO country code.`;
    h.geoCountries = [...new Set(norm)];
  }
  for (const k of ['geoLan', 'geoUnknown'] as const) {
    const v = fields[k];
    if (v === undefined) continue;
    if (v === 'allow' || v === 'deny') h[k] = v;
    else errors[k] = 'Must be allow or deny.';
  }
  if ((h.geoMode === 'allow' || h.geoMode === 'deny') && !h.geoCountries.length) errors.geoCountries = 'List at least one country for an allow-list or deny-list.';

  if (fields.rateLimit !== undefined) {
    if (fields.rateLimit === null || fields.rateLimit.trim() === '') {
      h.rateLimit = null;
      h.rateWindowS = null;
    } else {
      const r = parseRate(fields.rateLimit);
      if (r) {
        h.rateLimit = r.limit;
        h.rateWindowS = r.windowS;
      } else errors.rateLimit = 'Rate limit must look like 10/s, 300/min or 5000/h.';
    }
  }
  if (fields.rateBurst !== undefined) {
    const b = fields.rateBurst === null || fields.rateBurst === '' ? null : Number(fields.rateBurst);
    if (b !== null && !(Number.isInteger(b) && b >= 1 && b <= 1_000_000)) errors.rateBurst = 'Burst must be a whole number from 1 to 1000000.';
    else h.rateBurst = b;
  }
  return Object.keys(errors).length ? { ok: false, errors } : { ok: true, value: h };
}

/** Audit summary of a host: everything but timestamps. */
const summary = (h: HostInput | Host) => ({ ...h, rules: 'rules' in h ? h.rules.length : undefined, createdAt: undefined, updatedAt: undefined });

export async function addHost(db: Database, actor: Actor, fields: HostFields): Promise<Host> {
  const v = validateHost(fields, null);
  if (!v.ok) throw new CommandError('invalid host', 400, v.errors);
  return mutate(db, actor, async (tx) => {
    if (await getHost(tx, v.value.domain)) throw new CommandError('host exists', 409, { domain: `${v.value.domain} is already published.` });
    await createHost(tx, v.value);
    const host = (await getHost(tx, v.value.domain))!;
    return { result: host, audit: { action: 'host.create', target: host.domain, after: summary(host) } };
  });
}

export async function editHost(db: Database, actor: Actor, domain: string, fields: HostFields): Promise<Host> {
  return mutate(db, actor, async (tx) => {
    const before = await getHost(tx, normalizeHost(domain) ?? domain);
    if (!before) throw new CommandError(`no host ${domain}`, 404);
    const v = validateHost(fields, before);
    if (!v.ok) throw new CommandError('invalid host', 400, v.errors);
    if (v.value.domain !== before.domain && (await getHost(tx, v.value.domain))) {
      throw new CommandError('host exists', 409, { domain: `${v.value.domain} is already published.` });
    }
    await updateHost(tx, before.id, v.value);
    const after = (await getHost(tx, v.value.domain))!;
    return { result: after, audit: { action: 'host.update', target: before.domain, before: summary(before), after: summary(after) } };
  });
}

export async function removeHost(db: Database, actor: Actor, domain: string): Promise<void> {
  await mutate(db, actor, async (tx) => {
    const before = await getHost(tx, normalizeHost(domain) ?? domain);
    if (!before) throw new CommandError(`no host ${domain}`, 404);
    await deleteHost(tx, before.id);
    return { result: undefined, audit: { action: 'host.delete', target: before.domain, before: summary(before) } };
  });
}

export interface RuleFields {
  policy?: string;
  paths?: string | string[];
  methods?: string | string[];
  networks?: string | string[];
}

export function validateRule(f: RuleFields): Validated<Omit<HostRule, 'id' | 'position'>> {
  const errors: FieldErrors = {};
  const policy = f.policy as Policy;
  if (!POLICIES.includes(policy)) errors.policy = `Policy must be one of ${POLICIES.join(', ')}.`;
  const paths = list(f.paths) ?? [];
  const badPath = paths.map(patternProblem).find(Boolean);
  if (badPath) errors.paths = badPath;
  const methods = (list(f.methods) ?? []).map((m) => m.toUpperCase());
  const badMethod = methods.find((m) => !/^[A-Z]{1,16}$/.test(m));
  if (badMethod) errors.methods = `"${badMethod}" is not an HTTP method.`;
  const networks = list(f.networks) ?? [];
  const parsed = networks.map((n) => parseCidr(n));
  const badNet = networks.find((_, i) => !parsed[i]);
  if (badNet) errors.networks = `"${badNet}" is not a CIDR network (e.g. 192.168.1.0/24).`;
  if (Object.keys(errors).length) return { ok: false, errors };
  return { ok: true, value: { policy, paths, methods: [...new Set(methods)], networks: parsed.map((c) => c!.text) } };
}

export async function addHostRule(db: Database, actor: Actor, domain: string, fields: RuleFields): Promise<Host> {
  const v = validateRule(fields);
  if (!v.ok) throw new CommandError('invalid rule', 400, v.errors);
  return mutate(db, actor, async (tx) => {
    const host = await getHost(tx, normalizeHost(domain) ?? domain);
    if (!host) throw new CommandError(`no host ${domain}`, 404);
    const id = await createHostRule(tx, host.id, v.value);
    const after = (await getHost(tx, host.domain))!;
    return { result: after, audit: { action: 'host.rule.create', target: host.domain, after: { id, ...v.value } } };
  });
}

export async function removeHostRule(db: Database, actor: Actor, domain: string, ruleId: number): Promise<Host> {
  return mutate(db, actor, async (tx) => {
    const host = await getHost(tx, normalizeHost(domain) ?? domain);
    if (!host) throw new CommandError(`no host ${domain}`, 404);
    const rule = host.rules.find((r) => r.id === ruleId);
    if (!rule || !(await deleteHostRule(tx, host.id, ruleId))) throw new CommandError(`no rule ${ruleId} on ${host.domain}`, 404);
    const after = (await getHost(tx, host.domain))!;
    return { result: after, audit: { action: 'host.rule.delete', target: host.domain, before: rule } };
  });
}
