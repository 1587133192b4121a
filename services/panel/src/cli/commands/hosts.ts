/** `argos host …`: publish, edit, inspect and remove hosts, and their ordered rules. */
import { CLI_ACTOR } from '@argos/shared/audit';
import { addHost, addHostRule, editHost, formatRate, removeHost, removeHostRule, type HostFields } from '@argos/shared/commands/hosts';
import { CommandError } from '@argos/shared/commands/errors';
import { getHost, listHosts, type Host } from '@argos/shared/repos/hosts';
import { normalizeHost } from '@argos/shared/hostname';
import { str, flag, type Args, type Command } from '../framework.ts';
import { table } from '../table.ts';

const HOST_OPTIONS = {
  upstream: { type: 'string', multiple: true },
  policy: { type: 'string' },
  tls: { type: 'string' },
  'allow-users': { type: 'string' },
  'allow-groups': { type: 'string' },
  enable: { type: 'boolean' },
  disable: { type: 'boolean' },
  'allow-basic': { type: 'string' },
  'allow-tokens': { type: 'string' },
  'upstream-tls-verify': { type: 'string' },
  'geo-allow': { type: 'string' },
  'geo-deny': { type: 'string' },
  'geo-off': { type: 'boolean' },
  'geo-inherit': { type: 'boolean' },
  'geo-lan': { type: 'string' },
  'geo-unknown': { type: 'string' },
  'rate-limit': { type: 'string' },
  'rate-burst': { type: 'string' },
} as const;

const HOST_USAGE_OPTS =
  '[--upstream URL]... [--policy bypass|one_factor|two_factor|deny] [--tls acme|internal|off] [--allow-users u1,u2] [--allow-groups g1,g2] ' +
  '[--enable|--disable] [--allow-basic true|false] [--allow-tokens true|false] [--geo-allow CC,..|--geo-deny CC,..|--geo-off|--geo-inherit] ' +
  '[--geo-lan allow|deny] [--geo-unknown allow|deny] [--rate-limit N/s|N/min|""] [--rate-burst N]';

function fieldsFrom(a: Args): HostFields {
  const f: HostFields = {};
  const ups = a.values.upstream;
  if (Array.isArray(ups) && ups.length) f.upstreams = ups;
  f.policy = str(a, 'policy');
  f.tlsMode = str(a, 'tls');
  f.allowedUsers = str(a, 'allow-users');
  f.allowedGroups = str(a, 'allow-groups');
  if (flag(a, 'enable')) f.enabled = true;
  if (flag(a, 'disable')) f.enabled = false;
  f.allowBasic = str(a, 'allow-basic');
  f.allowTokens = str(a, 'allow-tokens');
  f.upstreamTlsVerify = str(a, 'upstream-tls-verify');
  if (str(a, 'geo-allow') !== undefined) Object.assign(f, { geoMode: 'allow', geoCountries: str(a, 'geo-allow') });
  if (str(a, 'geo-deny') !== undefined) Object.assign(f, { geoMode: 'deny', geoCountries: str(a, 'geo-deny') });
  if (flag(a, 'geo-off')) f.geoMode = 'off';
  if (flag(a, 'geo-inherit')) f.geoMode = 'inherit';
  f.geoLan = str(a, 'geo-lan');
  f.geoUnknown = str(a, 'geo-unknown');
  f.rateLimit = str(a, 'rate-limit');
  f.rateBurst = str(a, 'rate-burst');
  for (const k of Object.keys(f) as (keyof HostFields)[]) if (f[k] === undefined) delete f[k];
  return f;
}

export function presentHost(h: Host) {
  return {
    domain: h.domain,
    upstreams: h.upstreams,
    policy: h.policy,
    tls: h.tlsMode,
    enabled: h.enabled,
    allowedUsers: h.allowedUsers,
    allowedGroups: h.allowedGroups,
    allowBasic: h.allowBasic,
    allowTokens: h.allowTokens,
    upstreamTlsVerify: h.upstreamTlsVerify,
    geo: { mode: h.geoMode, countries: h.geoCountries, lan: h.geoLan, unknown: h.geoUnknown },
    rateLimit: formatRate(h) || null,
    rateBurst: h.rateBurst,
    rules: h.rules.map((r) => ({ id: r.id, position: r.position, policy: r.policy, paths: r.paths, methods: r.methods, networks: r.networks })),
  };
}

function describe(h: Host): string {
  const p = presentHost(h);
  const lines = [
    `domain:     ${p.domain}${p.enabled ? '' : '  (disabled)'}`,
    `upstreams:  ${p.upstreams.join(', ')}`,
    `policy:     ${p.policy}`,
    `tls:        ${p.tls}`,
    `users:      ${p.allowedUsers.join(', ') || '(any logged-in user)'}`,
    `groups:     ${p.allowedGroups.join(', ') || '-'}`,
    `basic/token: ${p.allowBasic ? 'basic' : '-'} / ${p.allowTokens ? 'tokens' : '-'}`,
    `countries:  ${p.geo.mode}${p.geo.countries.length ? ' ' + p.geo.countries.join(',') : ''} (LAN ${p.geo.lan}, unknown ${p.geo.unknown})`,
    `rate limit: ${p.rateLimit ?? 'global default'}${p.rateBurst ? ` burst ${p.rateBurst}` : ''}`,
  ];
  if (p.rules.length) {
    lines.push('rules (first match wins):');
    for (const r of p.rules) lines.push(`  #${r.id} ${r.policy}  paths=${r.paths.join(',') || '*'} methods=${r.methods.join(',') || '*'} networks=${r.networks.join(',') || '*'}`);
  }
  return lines.join('\n');
}

async function findHost(db: Parameters<typeof getHost>[0], domain: string): Promise<Host> {
  const h = await getHost(db, normalizeHost(domain) ?? domain);
  if (!h) throw new CommandError(`no host ${domain} (see \`argos host list\`)`, 404);
  return h;
}

export const hostCommands: Command[] = [
  {
    path: ['host', 'add'],
    summary: 'Publish a host behind Caddy + Argos',
    usage: `argos host add <domain> --upstream <url> ${HOST_USAGE_OPTS}`,
    details: 'Example: argos host add jellyfin.example.com --upstream http://10.0.0.5:8096 --policy one_factor\nA running Argos panel pushes the change to Caddy within a second; run `argos caddy apply` only without one.',
    options: HOST_OPTIONS,
    args: 1,
    json: true,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const h = await addHost(db, CLI_ACTOR, { ...fieldsFrom(a), domain: a.positionals[0] });
      if (ctx.wantsJson) ctx.json(presentHost(h));
      else ctx.out(`Published ${h.domain} → ${h.upstreams.join(', ')} (${h.policy}). A running panel applies it to Caddy within a second.`);
    },
  },
  {
    path: ['host', 'edit'],
    summary: 'Change a published host',
    usage: `argos host edit <domain> ${HOST_USAGE_OPTS}`,
    options: HOST_OPTIONS,
    args: 1,
    json: true,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const h = await editHost(db, CLI_ACTOR, a.positionals[0]!, fieldsFrom(a));
      if (ctx.wantsJson) ctx.json(presentHost(h));
      else ctx.out(`Updated ${h.domain}.\n${describe(h)}`);
    },
  },
  {
    path: ['host', 'list'],
    summary: 'List published hosts',
    usage: 'argos host list [--json]',
    args: 0,
    json: true,
    async run(ctx) {
      const { db } = await ctx.store();
      const hosts = await listHosts(db);
      if (ctx.wantsJson) return void ctx.json(hosts.map(presentHost));
      ctx.out(hosts.length ? table(['DOMAIN', 'POLICY', 'TLS', 'STATUS', 'UPSTREAMS'], hosts.map((h) => [h.domain, h.policy, h.tlsMode, h.enabled ? 'enabled' : 'disabled', h.upstreams.join(', ')])) : 'No hosts yet. Publish one with `argos host add`.');
    },
  },
  {
    path: ['host', 'show'],
    summary: 'Show one host with its rules',
    usage: 'argos host show <domain> [--json]',
    args: 1,
    json: true,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const h = await findHost(db, a.positionals[0]!);
      if (ctx.wantsJson) ctx.json(presentHost(h));
      else ctx.out(describe(h));
    },
  },
  {
    path: ['host', 'remove'],
    summary: 'Unpublish a host',
    usage: 'argos host remove <domain>',
    args: 1,
    async run(ctx, a) {
      const { db } = await ctx.store();
      await removeHost(db, CLI_ACTOR, a.positionals[0]!);
      ctx.out(`Removed ${a.positionals[0]}. A running panel applies it to Caddy within a second.`);
    },
  },
  {
    path: ['host', 'rule', 'add'],
    summary: "Append a rule to a host's ordered rules (first match wins)",
    usage: 'argos host rule add <domain> --policy bypass|one_factor|two_factor|deny [--path GLOB]... [--methods GET,HEAD] [--networks CIDR,...]',
    details: 'Paths: "/api/health" matches that path and below it; "*" matches within a segment, "**" across segments.\nExample: argos host rule add app.example.com --policy bypass --path /api/health --methods GET',
    options: { policy: { type: 'string' }, path: { type: 'string', multiple: true }, methods: { type: 'string' }, networks: { type: 'string' } },
    args: 1,
    json: true,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const paths = a.values.path;
      const h = await addHostRule(db, CLI_ACTOR, a.positionals[0]!, { policy: str(a, 'policy'), paths: Array.isArray(paths) ? paths : [], methods: str(a, 'methods'), networks: str(a, 'networks') });
      if (ctx.wantsJson) ctx.json(presentHost(h).rules);
      else ctx.out(`Rule added.\n${describe(h)}`);
    },
  },
  {
    path: ['host', 'rule', 'list'],
    summary: "List a host's rules in order",
    usage: 'argos host rule list <domain> [--json]',
    args: 1,
    json: true,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const h = await findHost(db, a.positionals[0]!);
      const rules = presentHost(h).rules;
      if (ctx.wantsJson) return void ctx.json(rules);
      ctx.out(rules.length ? table(['ID', 'POLICY', 'PATHS', 'METHODS', 'NETWORKS'], rules.map((r) => [r.id, r.policy, r.paths.join(',') || '*', r.methods.join(',') || '*', r.networks.join(',') || '*'])) : `No rules: every request to ${h.domain} gets the host policy (${h.policy}).`);
    },
  },
  {
    path: ['host', 'rule', 'remove'],
    summary: 'Remove a rule by id',
    usage: 'argos host rule remove <domain> <rule-id>',
    args: 2,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const id = Number(a.positionals[1]);
      if (!Number.isInteger(id)) throw new CommandError(`"${a.positionals[1]}" is not a rule id (see \`argos host rule list\`)`);
      await removeHostRule(db, CLI_ACTOR, a.positionals[0]!, id);
      ctx.out(`Removed rule #${id}.`);
    },
  },
];
