/**
 * The whole Caddy JSON config, generated from Argos's data by one pure function (golden-file tested).
 *
 * Every route Argos writes asks the gatekeeper first (forward_auth = a reverse_proxy rewritten to GET /verify),
 * so bans, geo and rate limits apply before any other handler with a stock Caddy. Identity headers are written
 * by hand instead of `copy_headers` (Caddy 2.6.2 passes literal placeholders and client values: see
 * docs real-components.md §1a), and the `argos_session` cookie is cut out of the Cookie header before any upstream.
 */
import { createHash } from 'node:crypto';
import { normalizeHost } from '../hostname.ts';
import type { Host, TlsMode } from '../repos/hosts.ts';

/** The Host fields the Caddy config depends on (a full Host fits). */
export type CaddyHost = Pick<Host, 'domain' | 'upstreams' | 'upstreamTlsVerify' | 'tlsMode' | 'enabled'>;

export interface CaddyInput {
  /** Published hosts; disabled ones are left out. */
  hosts: readonly CaddyHost[];
  /** ARGOS_PORTAL_URL: the portal's own host is published and proxies only portal paths to the gatekeeper. */
  portal: URL;
  /** behind_caddy mode: the panel's public domain and its listen address; null in lan mode. `tls` defaults to the portal's mode. */
  panel: { domain: string; dial: string; tls?: TlsMode } | null;
  /** Where Caddy reaches the gatekeeper, e.g. "127.0.0.1:9091". */
  gatekeeperDial: string;
  httpPort: number;
  httpsPort: number;
  /** Admin API address: "unix//path/caddy-admin.sock" or "127.0.0.1:2019". */
  admin: { listen: string; origins?: string[] };
  /** File for Caddy's JSON access log (read by CrowdSec), or null for none. */
  accessLog: string | null;
  /** Portal TLS mode. Default: 'off' for an http:// portal URL, else 'acme'. */
  portalTls?: TlsMode;
  /** Bind both listeners to this address only (e.g. "127.0.0.1" in tests). */
  bindHost?: string;
}

export class CaddyConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`cannot generate the Caddy config: ${problems.join('; ')}`);
    this.name = 'CaddyConfigError';
  }
}

/** Identity headers the gatekeeper answers with on 2xx; the only ones an upstream may receive from Argos. */
export const IDENTITY_HEADERS = ['Remote-User', 'Remote-Email', 'Remote-Name', 'Remote-Groups'] as const;

/** Underscore spellings of the identity headers: CGI/WSGI-style upstreams fold `_` and `-`, so clients must not send them. */
export const IDENTITY_LOOKALIKES = ['Remote_User', 'Remote_Email', 'Remote_Name', 'Remote_Groups'] as const;

/** Set by the gatekeeper's 2xx when it authenticated the request with the Authorization header (API token or Basic). */
export const CREDENTIAL_MARKER = 'X-Argos-Credential';

export const SESSION_COOKIE = 'argos_session';

/**
 * Removes every `argos_session` cookie from a Cookie header value (Go RE2 syntax: no lookbehind), in order:
 * first each one preceded by a separator (with that separator), then one left at the start (with the separator after it).
 * `a=1; argos_session=S; b=2` → `a=1; b=2`, `argos_session=S; b=2` → `b=2`, `my_argos_session=x` untouched.
 * Whitespace around the name is allowed because the gatekeeper trims cookie names too.
 */
export const SESSION_COOKIE_REPLACEMENTS: readonly { search_regexp: string; replace: string }[] = [
  { search_regexp: `;\\s*${SESSION_COOKIE}\\s*=[^;]*`, replace: '' },
  { search_regexp: `^\\s*${SESSION_COOKIE}\\s*=[^;]*(?:;\\s*)?`, replace: '' },
];

/** The only paths the portal host proxies to the gatekeeper; /verify, /metrics and /healthz are never among them. */
export const PORTAL_PATHS: readonly string[] = ['/', '/login', '/login/*', '/logout', '/oidc/*', '/account', '/account/*', '/static/*', '/.argos/*'];

/** Header that marks requests coming through the portal route; the gatekeeper then serves only portal pages. */
export const PORTAL_MARKER_HEADER = 'X-Argos-Portal';

export const ACCESS_LOGGER = 'argos_access';
export const HTTP_SERVER = 'argos_http';
export const HTTPS_SERVER = 'argos_https';

type Json = Record<string, unknown>;

/** Portal TLS mode: an http:// portal is always plain HTTP; https:// uses what the operator chose, ACME by default. */
export function derivePortalTls(portal: URL, told?: TlsMode): TlsMode {
  if (portal.protocol === 'http:') return 'off';
  return told ?? 'acme';
}

// Anything that Caddy would read as a placeholder ({...}) or that breaks a dial address is refused.
const SAFE_DIAL = /^(?:unix\/\/?[A-Za-z0-9._/-]+|(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5})$/;

function upstreamDial(raw: string, problems: string[], domain: string): { dial: string; tls: boolean } | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    problems.push(`host ${domain}: upstream "${raw}" is not a URL`);
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    problems.push(`host ${domain}: upstream "${raw}" must be http:// or https://`);
    return null;
  }
  if (u.username || u.password || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
    problems.push(`host ${domain}: upstream "${raw}" must be scheme://host[:port] without path, query or credentials`);
    return null;
  }
  const tls = u.protocol === 'https:';
  const dial = `${u.hostname}:${u.port || (tls ? '443' : '80')}`;
  if (!SAFE_DIAL.test(dial)) {
    problems.push(`host ${domain}: upstream "${raw}" has characters Caddy cannot dial`);
    return null;
  }
  return { dial, tls };
}

function checkDomain(domain: string, what: string, problems: string[]): void {
  if (normalizeHost(domain) !== domain || domain.startsWith('[')) problems.push(`${what}: "${domain}" is not a normalised host name`);
}

function checkPort(port: number, what: string, problems: string[]): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`${what}: ${port} is not a TCP port`);
}

function listenAddress(bindHost: string | undefined, port: number): string {
  if (!bindHost) return `:${port}`;
  const h = bindHost.includes(':') && !bindHost.startsWith('[') ? `[${bindHost}]` : bindHost;
  return `${h}:${port}`;
}

/** forward_auth to the gatekeeper, written out as Caddy's own forward_auth expands it, minus copy_headers. */
function forwardAuth(gatekeeperDial: string): Json {
  return {
    handler: 'reverse_proxy',
    upstreams: [{ dial: gatekeeperDial }],
    rewrite: { method: 'GET', uri: '/verify' },
    headers: {
      request: {
        set: { 'X-Forwarded-Method': ['{http.request.method}'], 'X-Forwarded-Uri': ['{http.request.uri}'] },
        // A client must not make /verify look like a portal request (the gatekeeper would refuse it anyway).
        delete: [PORTAL_MARKER_HEADER],
      },
    },
    // Default pool is 32 idle conns per host: under load Caddy churned thousands of connections to the gatekeeper.
    transport: gatekeeperTransport(),
    handle_response: [
      {
        match: { status_code: [2] },
        routes: [
          // Client-supplied identity headers (and their underscore look-alikes) never survive, whatever the gatekeeper answers.
          { handle: [{ handler: 'headers', request: { delete: [...IDENTITY_HEADERS, ...IDENTITY_LOOKALIKES] } }] },
          // An Argos token or Basic password that the gatekeeper consumed never reaches the upstream.
          {
            match: [{ not: [{ vars: { [`{http.reverse_proxy.header.${CREDENTIAL_MARKER}}`]: ['', '<nil>'] } }] }],
            handle: [{ handler: 'headers', request: { delete: ['Authorization'] } }],
          },
          // Each is set only when the gatekeeper's 2xx carries it non-empty (2.6.2: a missing one reads "<nil>").
          ...IDENTITY_HEADERS.map((h) => ({
            match: [{ not: [{ vars: { [`{http.reverse_proxy.header.${h}}`]: ['', '<nil>'] } }] }],
            handle: [{ handler: 'headers', request: { set: { [h]: [`{http.reverse_proxy.header.${h}}`] } } }],
          })),
        ],
      },
    ],
  };
}

function gatekeeperTransport(): Json {
  return { protocol: 'http', keep_alive: { max_idle_conns_per_host: 256 } };
}

function staticResponse(status: number, body: string): Json {
  return { handler: 'static_response', status_code: status, headers: { 'Content-Type': ['text/plain; charset=utf-8'] }, body };
}

function stripSessionCookie(): Json {
  return { handler: 'headers', request: { replace: { Cookie: SESSION_COOKIE_REPLACEMENTS.map((r) => ({ ...r })) } } };
}

function upstreamProxy(dials: { dial: string; tls: boolean }[], tlsVerify: boolean): Json {
  const proxy: Json = {
    handler: 'reverse_proxy',
    upstreams: dials.map((d) => ({ dial: d.dial })),
    // An upstream cannot plant Argos cookies (session fixation, login CSRF, lock-out): they are renamed on the way out.
    headers: { response: { replace: { 'Set-Cookie': [{ search_regexp: '^\\s*argos_', replace: 'upstream_blocked_argos_' }] } } },
  };
  if (dials.some((d) => d.tls)) proxy.transport = { protocol: 'http', tls: tlsVerify ? {} : { insecure_skip_verify: true } };
  return proxy;
}

function hostRoute(id: string, domain: string, routes: Json[]): Json {
  return { '@id': id, match: [{ host: [domain] }], handle: [{ handler: 'subroute', routes }], terminal: true };
}

interface Site {
  domain: string;
  tls: TlsMode;
  route: Json;
}

/** Exact names before wildcards (a wildcard must never shadow a specific host), then by name: stable output. */
function bySpecificity(a: { domain: string }, b: { domain: string }): number {
  const wa = a.domain.startsWith('*') ? 1 : 0;
  const wb = b.domain.startsWith('*') ? 1 : 0;
  if (wa !== wb) return wa - wb;
  return a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0;
}

/** Builds the complete Caddy JSON config. Pure: same input, same output. Throws CaddyConfigError listing every problem. */
export function buildCaddyConfig(input: CaddyInput): Json {
  const problems: string[] = [];
  const gk = input.gatekeeperDial;
  if (!SAFE_DIAL.test(gk)) problems.push(`gatekeeper dial "${gk}" is not host:port`);
  checkPort(input.httpPort, 'http port', problems);
  checkPort(input.httpsPort, 'https port', problems);
  if (input.httpPort === input.httpsPort) problems.push(`http and https ports are both ${input.httpPort}`);
  if (input.bindHost !== undefined && !/^[0-9A-Za-z.:[\]-]+$/.test(input.bindHost)) problems.push(`bind host "${input.bindHost}" is invalid`);

  const sites: Site[] = [];
  const seen = new Set<string>();
  const claim = (domain: string, what: string) => {
    if (seen.has(domain)) problems.push(`${what}: "${domain}" is published twice`);
    seen.add(domain);
  };

  // Portal: ask the gatekeeper (it treats the portal as a bypass host), then only portal paths reach it.
  const portalDomain = input.portal.hostname.toLowerCase();
  checkDomain(portalDomain, 'portal', problems);
  claim(portalDomain, 'portal');
  sites.push({
    domain: portalDomain,
    tls: derivePortalTls(input.portal, input.portalTls),
    route: hostRoute('argos-portal', portalDomain, [
      { handle: [forwardAuth(gk)] },
      {
        match: [{ path: [...PORTAL_PATHS] }],
        handle: [
          {
            handler: 'reverse_proxy',
            upstreams: [{ dial: gk }],
            headers: {
              request: {
                set: { [PORTAL_MARKER_HEADER]: ['1'] },
                delete: ['X-Forwarded-Method', 'X-Forwarded-Uri'],
              },
            },
            transport: gatekeeperTransport(),
          },
        ],
        terminal: true,
      },
      { handle: [staticResponse(404, 'Not found')] },
    ]),
  });

  if (input.panel) {
    const p = input.panel;
    checkDomain(p.domain, 'panel', problems);
    if (!SAFE_DIAL.test(p.dial)) problems.push(`panel dial "${p.dial}" is not host:port`);
    claim(p.domain, 'panel');
    sites.push({
      domain: p.domain,
      tls: p.tls ?? derivePortalTls(input.portal, input.portalTls),
      route: hostRoute('argos-panel', p.domain, [{ handle: [forwardAuth(gk)] }, { handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: p.dial }] }] }]),
    });
  }

  for (const h of input.hosts) {
    if (!h.enabled) continue;
    checkDomain(h.domain, 'host', problems);
    claim(h.domain, 'host');
    if (h.upstreams.length === 0) problems.push(`host ${h.domain}: no upstream`);
    const dials = h.upstreams.map((u) => upstreamDial(u, problems, h.domain)).filter((d) => d !== null);
    if (dials.some((d) => d.tls) && dials.some((d) => !d.tls)) problems.push(`host ${h.domain}: mixes http and https upstreams`);
    sites.push({
      domain: h.domain,
      tls: h.tlsMode,
      route: hostRoute(`argos-host-${h.domain}`, h.domain, [
        { handle: [forwardAuth(gk)] },
        { handle: [stripSessionCookie(), upstreamProxy(dials, h.upstreamTlsVerify)] },
      ]),
    });
  }

  if (problems.length) throw new CaddyConfigError(problems);
  sites.sort(bySpecificity);

  const plain = sites.filter((s) => s.tls === 'off');
  const secure = sites.filter((s) => s.tls !== 'off');
  const portSuffix = input.httpsPort === 443 ? '' : `:${input.httpsPort}`;

  const catchAll = (server: string): Json => ({
    '@id': `argos-catchall-${server}`,
    // The gatekeeper answers 403 for unknown hosts (Caddy passes any non-2xx through); the 403 here is the fail-safe.
    handle: [{ handler: 'subroute', routes: [{ handle: [forwardAuth(gk)] }, { handle: [staticResponse(403, 'Forbidden')] }] }],
    terminal: true,
  });

  const httpRoutes: { domain: string; route: Json }[] = [
    ...plain,
    ...secure.map((s) => ({
      domain: s.domain,
      route: {
        '@id': `argos-redirect-${s.domain}`,
        match: [{ host: [s.domain] }],
        handle: [
          {
            handler: 'static_response',
            status_code: 308,
            headers: { Location: [`https://{http.request.host}${portSuffix}{http.request.uri}`] },
          },
        ],
        terminal: true,
      },
    })),
  ].sort(bySpecificity);

  const logs = input.accessLog ? { logs: { default_logger_name: ACCESS_LOGGER } } : {};
  const servers: Json = {
    [HTTP_SERVER]: {
      listen: [listenAddress(input.bindHost, input.httpPort)],
      routes: [...httpRoutes.map((r) => r.route), catchAll('http')],
      // Argos writes its own redirects; with no TLS host at all, Caddy's automatic HTTPS has nothing to do here.
      automatic_https: secure.length ? { disable_redirects: true } : { disable: true },
      ...logs,
    },
  };
  if (secure.length) {
    servers[HTTPS_SERVER] = {
      listen: [listenAddress(input.bindHost, input.httpsPort)],
      routes: [...secure.map((s) => s.route), catchAll('https')],
      automatic_https: { disable_redirects: true },
      ...logs,
    };
  }

  const apps: Json = { http: { http_port: input.httpPort, https_port: input.httpsPort, servers } };
  const internal = secure.filter((s) => s.tls === 'internal').map((s) => s.domain);
  if (internal.length) apps.tls = { automation: { policies: [{ subjects: internal, issuers: [{ module: 'internal' }] }] } };

  const admin: Json = { listen: input.admin.listen };
  // Over a unix socket, clients send an empty Host (caddy stop) or "localhost" (node, curl): both must pass the origin check.
  if (input.admin.origins) admin.origins = input.admin.origins;
  else if (input.admin.listen.startsWith('unix/')) admin.origins = ['', 'localhost'];
  admin.config = { persist: false };

  const config: Json = { admin };
  if (input.accessLog) {
    config.logging = {
      logs: {
        default: { exclude: [`http.log.access.${ACCESS_LOGGER}`] },
        [ACCESS_LOGGER]: {
          writer: { output: 'file', filename: input.accessLog, roll_size_mb: 50, roll_keep: 5 },
          encoder: { format: 'json' },
          include: [`http.log.access.${ACCESS_LOGGER}`],
        },
      },
    };
  }
  config.apps = apps;
  return config;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/** JSON with object keys sorted at every level (after a JSON round-trip, so undefined fields vanish as they would on the wire). */
export function canonicalJson(config: unknown): string {
  return JSON.stringify(sortKeys(JSON.parse(JSON.stringify(config ?? null))));
}

/** sha256 (hex) of the canonical JSON: equal configs hash equal whatever their key order. Used for drift detection. */
export function caddyConfigHash(config: object): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex');
}
