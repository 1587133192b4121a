/** Hosts repository: plain rows in, plain objects out. Mutations require an AuditedTx. */
import type { Queryable } from '../db/sqlite.ts';
import type { AuditedTx } from '../audit.ts';

export type Policy = 'bypass' | 'one_factor' | 'two_factor' | 'deny';
export type TlsMode = 'acme' | 'internal' | 'off';
export type GeoMode = 'inherit' | 'off' | 'allow' | 'deny';
export const POLICIES: readonly Policy[] = ['bypass', 'one_factor', 'two_factor', 'deny'];
export const TLS_MODES: readonly TlsMode[] = ['acme', 'internal', 'off'];

export interface HostRule {
  id: number;
  position: number;
  policy: Policy;
  paths: string[];
  methods: string[];
  networks: string[];
}

export interface Host {
  id: number;
  domain: string;
  upstreams: string[];
  upstreamTlsVerify: boolean;
  policy: Policy;
  tlsMode: TlsMode;
  enabled: boolean;
  allowedUsers: string[];
  allowedGroups: string[];
  allowBasic: boolean;
  allowTokens: boolean;
  geoMode: GeoMode;
  geoCountries: string[];
  geoLan: 'allow' | 'deny';
  geoUnknown: 'allow' | 'deny';
  rateLimit: number | null;
  rateWindowS: number | null;
  rateBurst: number | null;
  rules: HostRule[];
  createdAt: number;
  updatedAt: number;
}

export type HostInput = Omit<Host, 'id' | 'rules' | 'createdAt' | 'updatedAt'>;

interface HostRow {
  id: number;
  domain: string;
  upstreams: string;
  upstream_tls_verify: number;
  policy: Policy;
  tls_mode: TlsMode;
  enabled: number;
  allowed_users: string;
  allowed_groups: string;
  allow_basic: number;
  allow_tokens: number;
  geo_mode: GeoMode;
  geo_countries: string;
  geo_lan: 'allow' | 'deny';
  geo_unknown: 'allow' | 'deny';
  rate_limit: number | null;
  rate_window_s: number | null;
  rate_burst: number | null;
  created_at: number;
  updated_at: number;
}

interface RuleRow {
  id: number;
  host_id: number;
  position: number;
  policy: Policy;
  paths: string;
  methods: string;
  networks: string;
}

const toRule = (r: RuleRow): HostRule => ({
  id: r.id,
  position: r.position,
  policy: r.policy,
  paths: JSON.parse(r.paths),
  methods: JSON.parse(r.methods),
  networks: JSON.parse(r.networks),
});

const toHost = (r: HostRow, rules: HostRule[]): Host => ({
  id: r.id,
  domain: r.domain,
  upstreams: JSON.parse(r.upstreams),
  upstreamTlsVerify: !!r.upstream_tls_verify,
  policy: r.policy,
  tlsMode: r.tls_mode,
  enabled: !!r.enabled,
  allowedUsers: JSON.parse(r.allowed_users),
  allowedGroups: JSON.parse(r.allowed_groups),
  allowBasic: !!r.allow_basic,
  allowTokens: !!r.allow_tokens,
  geoMode: r.geo_mode,
  geoCountries: JSON.parse(r.geo_countries),
  geoLan: r.geo_lan,
  geoUnknown: r.geo_unknown,
  rateLimit: r.rate_limit,
  rateWindowS: r.rate_window_s,
  rateBurst: r.rate_burst,
  rules,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function listHosts(q: Queryable): Promise<Host[]> {
  const rows = await q.all<HostRow>('SELECT * FROM hosts ORDER BY domain');
  const rules = await q.all<RuleRow>('SELECT * FROM host_rules ORDER BY host_id, position, id');
  const byHost = new Map<number, HostRule[]>();
  for (const r of rules) {
    const list = byHost.get(r.host_id) ?? [];
    list.push(toRule(r));
    byHost.set(r.host_id, list);
  }
  return rows.map((r) => toHost(r, byHost.get(r.id) ?? []));
}

export async function countHosts(q: Queryable): Promise<number> {
  return (await q.get<{ n: number }>('SELECT count(*) AS n FROM hosts'))?.n ?? 0;
}

export async function getHost(q: Queryable, domain: string): Promise<Host | null> {
  const row = await q.get<HostRow>('SELECT * FROM hosts WHERE domain = ?', [domain]);
  if (!row) return null;
  const rules = await q.all<RuleRow>('SELECT * FROM host_rules WHERE host_id = ? ORDER BY position, id', [row.id]);
  return toHost(row, rules.map(toRule));
}

const columns = (h: HostInput) => [
  h.domain,
  JSON.stringify(h.upstreams),
  h.upstreamTlsVerify ? 1 : 0,
  h.policy,
  h.tlsMode,
  h.enabled ? 1 : 0,
  JSON.stringify(h.allowedUsers),
  JSON.stringify(h.allowedGroups),
  h.allowBasic ? 1 : 0,
  h.allowTokens ? 1 : 0,
  h.geoMode,
  JSON.stringify(h.geoCountries),
  h.geoLan,
  h.geoUnknown,
  h.rateLimit,
  h.rateWindowS,
  h.rateBurst,
];

export async function createHost(tx: AuditedTx, h: HostInput, now = Date.now()): Promise<number> {
  const r = await tx.run(
    `INSERT INTO hosts (domain, upstreams, upstream_tls_verify, policy, tls_mode, enabled, allowed_users, allowed_groups,
       allow_basic, allow_tokens, geo_mode, geo_countries, geo_lan, geo_unknown, rate_limit, rate_window_s, rate_burst, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [...columns(h), now, now],
  );
  return r.lastID;
}

export async function updateHost(tx: AuditedTx, id: number, h: HostInput, now = Date.now()): Promise<void> {
  await tx.run(
    `UPDATE hosts SET domain = ?, upstreams = ?, upstream_tls_verify = ?, policy = ?, tls_mode = ?, enabled = ?, allowed_users = ?,
       allowed_groups = ?, allow_basic = ?, allow_tokens = ?, geo_mode = ?, geo_countries = ?, geo_lan = ?, geo_unknown = ?,
       rate_limit = ?, rate_window_s = ?, rate_burst = ?, updated_at = ? WHERE id = ?`,
    [...columns(h), now, id],
  );
}

export async function deleteHost(tx: AuditedTx, id: number): Promise<void> {
  await tx.run('DELETE FROM hosts WHERE id = ?', [id]);
}

export async function createHostRule(tx: AuditedTx, hostId: number, rule: Omit<HostRule, 'id' | 'position'>, now = Date.now()): Promise<number> {
  const pos = await tx.get<{ p: number | null }>('SELECT max(position) AS p FROM host_rules WHERE host_id = ?', [hostId]);
  const r = await tx.run('INSERT INTO host_rules (host_id, position, policy, paths, methods, networks, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [
    hostId,
    (pos?.p ?? 0) + 1,
    rule.policy,
    JSON.stringify(rule.paths),
    JSON.stringify(rule.methods),
    JSON.stringify(rule.networks),
    now,
  ]);
  return r.lastID;
}

export async function deleteHostRule(tx: AuditedTx, hostId: number, ruleId: number): Promise<boolean> {
  const r = await tx.run('DELETE FROM host_rules WHERE id = ? AND host_id = ?', [ruleId, hostId]);
  return r.changes > 0;
}

/** Defaults for a new host: everything off but what the operator chose. */
export function hostDefaults(domain: string, upstreams: string[]): HostInput {
  return {
    domain,
    upstreams,
    upstreamTlsVerify: true,
    policy: 'one_factor',
    tlsMode: 'acme',
    enabled: true,
    allowedUsers: [],
    allowedGroups: [],
    allowBasic: false,
    allowTokens: false,
    geoMode: 'inherit',
    geoCountries: [],
    geoLan: 'allow',
    geoUnknown: 'allow',
    rateLimit: null,
    rateWindowS: null,
    rateBurst: null,
  };
}
