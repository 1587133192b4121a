/**
 * Environment configuration, validated once at startup.
 *
 * Every problem is collected (never just the first) with a fix, so an operator
 * can repair a broken `.env` in one pass. The result is frozen; derived runtime
 * state lives elsewhere.
 */
import path from 'node:path';
import { isIP } from 'node:net';
import { parseCidr, type Cidr } from './net.ts';

export type Mode = 'lan' | 'behind_caddy';

export interface Listen {
  host: string;
  port: number;
}

export interface Config {
  masterKey: Buffer;
  dataDir: string;
  mode: Mode;
  panelListen: Listen;
  gatekeeperListen: Listen;
  portalUrl: URL;
  panelDomain: string | null;
  trustedProxies: readonly Cidr[];
  caddyAdmin: string | null;
  caddyHttpPort: number;
  caddyHttpsPort: number;
  /** Where Caddy reaches the gatekeeper and the panel (ARGOS_GATEKEEPER_DIAL / ARGOS_PANEL_DIAL; default: their listen address). */
  gatekeeperDial: string;
  panelDial: string;
  /** Caddy's JSON access log, as a path both Caddy and Argos see (ARGOS_CADDY_ACCESS_LOG). */
  caddyAccessLog: string;
  /** Address Caddy's listeners bind to (ARGOS_CADDY_BIND); null = all interfaces. */
  caddyBind: string | null;
  crowdsecUrl: string | null;
  crowdsecKey: string | null;
  oidcEnabledOverride: boolean | null;
  initialAdminUser: string | null;
  initialAdminPassword: string | null;
  logLevel: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Argos cannot start: ${problems.length} configuration problem(s):\n` + problems.map((p) => `  - ${p}`).join('\n'));
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function parseListen(raw: string, name: string, problems: string[]): Listen {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(raw.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) {
    problems.push(`${name}: "${raw}" is not host:port (example: ${name}=127.0.0.1:9091)`);
    return { host: '127.0.0.1', port: 1 };
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** A listen address as something to dial: wildcard hosts become loopback. */
function dialOf(l: Listen): string {
  const host = l.host === '0.0.0.0' ? '127.0.0.1' : l.host === '::' ? '[::1]' : l.host.includes(':') ? `[${l.host}]` : l.host;
  return `${host}:${l.port}`;
}

function parsePort(raw: string | undefined, def: number, name: string, problems: string[]): number {
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    problems.push(`${name}: "${raw}" is not a TCP port (1-65535)`);
    return def;
  }
  return n;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Parses and validates the environment. Throws ConfigError listing every problem. */
export function loadConfig(env: Env = process.env, cwd = process.cwd()): Config {
  const problems: string[] = [];
  const get = (k: string) => {
    const v = env[k];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };

  let masterKey = Buffer.alloc(0);
  const mk = env.ARGOS_MASTER_KEY;
  if (mk === undefined || mk === '') {
    problems.push(
      'ARGOS_MASTER_KEY: not set. It must be 64 hex characters. Generate one with `npx argos init` (writes .env) or `openssl rand -hex 32`, and keep a copy in a password manager.',
    );
  } else if (!/^[0-9a-fA-F]{64}$/.test(mk.trim())) {
    problems.push(
      `ARGOS_MASTER_KEY: malformed (${mk.trim().length} characters); it must be exactly 64 hex characters (openssl rand -hex 32). The value is not shown.`,
    );
  } else {
    masterKey = Buffer.from(mk.trim(), 'hex');
  }

  const modeRaw = get('ARGOS_MODE') ?? 'lan';
  let mode: Mode = 'lan';
  if (modeRaw === 'lan' || modeRaw === 'behind_caddy') mode = modeRaw;
  else problems.push(`ARGOS_MODE: "${modeRaw}" is not one of lan, behind_caddy`);

  const dataDir = path.resolve(cwd, get('ARGOS_DATA_DIR') ?? './data');

  const panelListen = parseListen(
    get('ARGOS_PANEL_LISTEN') ?? (mode === 'lan' ? '0.0.0.0:8080' : '127.0.0.1:8080'),
    'ARGOS_PANEL_LISTEN',
    problems,
  );
  const gatekeeperListen = parseListen(get('ARGOS_GATEKEEPER_LISTEN') ?? '127.0.0.1:9091', 'ARGOS_GATEKEEPER_LISTEN', problems);

  let portalUrl = new URL('http://auth.localhost');
  const portalRaw = get('ARGOS_PORTAL_URL') ?? 'http://auth.localhost';
  try {
    const u = new URL(portalRaw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    if (u.pathname !== '/' || u.search || u.hash || u.username || u.password) throw new Error('path');
    portalUrl = u;
  } catch {
    problems.push(`ARGOS_PORTAL_URL: "${portalRaw}" must be an http(s) origin without path, e.g. https://auth.example.com`);
  }

  const panelDomain = get('ARGOS_PANEL_DOMAIN')?.toLowerCase() ?? null;
  if (mode === 'behind_caddy' && !panelDomain) {
    problems.push('ARGOS_PANEL_DOMAIN: required when ARGOS_MODE=behind_caddy (e.g. ARGOS_PANEL_DOMAIN=panel.example.com)');
  }

  const trustedProxies: Cidr[] = [];
  for (const part of (get('ARGOS_TRUSTED_PROXIES') ?? '127.0.0.0/8,::1/128').split(',')) {
    const p = part.trim();
    if (!p) continue;
    const c = parseCidr(p.includes('/') ? p : `${p}/${isIP(p) === 6 ? 128 : 32}`);
    if (c) trustedProxies.push(c);
    else problems.push(`ARGOS_TRUSTED_PROXIES: "${p}" is not an IP address or CIDR (example: 127.0.0.1/32,172.18.0.0/16)`);
  }

  const caddyAdmin = get('ARGOS_CADDY_ADMIN') ?? null;
  if (caddyAdmin && !/^unix\/\/.+/.test(caddyAdmin) && !/^https?:\/\/[^/]+\/?$/.test(caddyAdmin)) {
    problems.push(`ARGOS_CADDY_ADMIN: "${caddyAdmin}" must be http://host:port or unix//path/to/socket`);
  }

  const bind = get('ARGOS_CADDY_BIND');
  if (bind && !isIP(bind.replace(/^\[|\]$/g, ''))) problems.push(`ARGOS_CADDY_BIND: "${bind}" must be an IP address (e.g. 127.0.0.1)`);

  const crowdsecUrl = get('ARGOS_CROWDSEC_URL') ?? null;
  if (crowdsecUrl && !/^https?:\/\//.test(crowdsecUrl)) problems.push(`ARGOS_CROWDSEC_URL: "${crowdsecUrl}" must be an http(s) URL`);

  let oidcEnabledOverride: boolean | null = null;
  const oidc = get('ARGOS_OIDC_ENABLED');
  if (oidc !== undefined) {
    if (oidc === 'true' || oidc === 'false') oidcEnabledOverride = oidc === 'true';
    else problems.push(`ARGOS_OIDC_ENABLED: "${oidc}" must be true or false`);
  }

  const logLevel = get('ARGOS_LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`ARGOS_LOG_LEVEL: "${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);

  const config: Config = {
    masterKey,
    dataDir,
    mode,
    panelListen,
    gatekeeperListen,
    portalUrl,
    panelDomain,
    trustedProxies,
    caddyAdmin,
    caddyHttpPort: parsePort(get('ARGOS_CADDY_HTTP_PORT'), 80, 'ARGOS_CADDY_HTTP_PORT', problems),
    caddyHttpsPort: parsePort(get('ARGOS_CADDY_HTTPS_PORT'), 443, 'ARGOS_CADDY_HTTPS_PORT', problems),
    caddyBind: get('ARGOS_CADDY_BIND') ?? null,
    caddyAccessLog: path.resolve(cwd, get('ARGOS_CADDY_ACCESS_LOG') ?? path.join(dataDir, 'logs', 'caddy-access.log')),
    gatekeeperDial: get('ARGOS_GATEKEEPER_DIAL') ?? dialOf(gatekeeperListen),
    panelDial: get('ARGOS_PANEL_DIAL') ?? dialOf(panelListen),
    crowdsecUrl,
    crowdsecKey: get('ARGOS_CROWDSEC_KEY') ?? null,
    oidcEnabledOverride,
    initialAdminUser: get('ARGOS_INITIAL_ADMIN_USER') ?? null,
    initialAdminPassword: env.ARGOS_INITIAL_ADMIN_PASSWORD || null,
    logLevel,
  };
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** The default cookie domain: the parent domain of the portal's host (auth.example.com → example.com). */
export function defaultCookieDomain(portalUrl: URL): string {
  const host = portalUrl.hostname.toLowerCase();
  if (isIP(host.replace(/^\[|\]$/g, ''))) return host;
  const parts = host.split('.');
  return parts.length > 2 ? parts.slice(1).join('.') : host;
}

/** Loads config or prints every problem and exits 1: the startup entry for services and the CLI. */
export function loadConfigOrExit(env: Env = process.env): Config {
  try {
    return loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(e.message + '\n');
      process.exit(1);
    }
    throw e;
  }
}
