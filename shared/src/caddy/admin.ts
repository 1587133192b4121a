/**
 * A small client for Caddy's admin API (node:http, over a unix socket or loopback TCP), and the
 * load → re-read → compare step that tells the panel whether Caddy runs what Argos generated.
 * A failed /load leaves Caddy's previous config running; Caddy's `{"error": "..."}` text is kept for the operator.
 */
import http from 'node:http';
import { caddyConfigHash } from './config.ts';

const TIMEOUT_MS = 5_000;

export class CaddyAdminError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'CaddyAdminError';
  }
}

/** POST /load was refused; Caddy kept its previous config. `caddyError` is Caddy's own message. */
export class CaddyLoadError extends CaddyAdminError {
  constructor(
    readonly caddyError: string,
    status: number,
  ) {
    super(`Caddy refused the config (HTTP ${status}): ${caddyError}`, status);
    this.name = 'CaddyLoadError';
  }
}

interface Target {
  socketPath?: string;
  host?: string;
  port?: number;
}

/** Parses "unix//path/admin.sock", "http://127.0.0.1:2019" or a bare "127.0.0.1:2019" (Caddy's own listen syntax). */
export function parseAdminAddress(address: string): Target {
  if (address.startsWith('unix/')) {
    const socketPath = address.slice('unix/'.length);
    if (!socketPath) throw new Error(`invalid Caddy admin address "${address}"`);
    return { socketPath };
  }
  const u = new URL(/^https?:\/\//.test(address) ? address : `http://${address}`);
  if (u.protocol !== 'http:') throw new Error(`Caddy admin address "${address}": only http:// and unix// are supported`);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80) };
}

interface AdminResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: string;
}

function errorText(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: unknown };
    if (j && typeof j.error === 'string') return j.error;
  } catch {
    // not JSON: fall through to the raw text
  }
  return body.trim() || '(empty response)';
}

export class CaddyAdminClient {
  private readonly target: Target;

  constructor(
    readonly address: string,
    private readonly timeoutMs = TIMEOUT_MS,
  ) {
    this.target = parseAdminAddress(address);
  }

  private request(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<AdminResponse> {
    return new Promise((resolve, reject) => {
      const h: Record<string, string | number> = { ...headers };
      // Over a unix socket Caddy checks Host against its origins; the generated config allows "localhost".
      if (this.target.socketPath) h.Host = 'localhost';
      if (body !== undefined) h['Content-Length'] = Buffer.byteLength(body);
      const req = http.request({ ...this.target, method, path, headers: h, agent: false });
      const timer = setTimeout(
        () => req.destroy(new CaddyAdminError(`Caddy admin API ${this.address}: no answer within ${this.timeoutMs} ms`, null)),
        this.timeoutMs,
      );
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e instanceof CaddyAdminError ? e : new CaddyAdminError(`Caddy admin API ${this.address}: ${e.message}`, null));
      });
      req.end(body);
    });
  }

  /** The running config (null when Caddy has none) and its Etag, for If-Match on the next load. */
  async getConfig(): Promise<{ config: object | null; etag: string | null }> {
    const r = await this.request('GET', '/config/');
    if (r.status !== 200) throw new CaddyAdminError(`GET /config/ → ${r.status}: ${errorText(r.body)}`, r.status);
    let config: unknown;
    try {
      config = JSON.parse(r.body);
    } catch {
      throw new CaddyAdminError('GET /config/ returned invalid JSON', r.status);
    }
    // Caddy 2.6 sends the Etag as an HTTP trailer (after the chunked body), not as a header.
    const etag = r.trailers.etag ?? r.headers.etag;
    return { config: config && typeof config === 'object' ? config : null, etag: typeof etag === 'string' ? etag : null };
  }

  /**
   * Replaces the whole config. Throws CaddyLoadError with Caddy's message when refused (the old config stays).
   * With `ifMatch` (an Etag from getConfig) the write is conditional (412 when Caddy's config changed meanwhile):
   * Caddy 2.6 ignores If-Match on POST /load, so that case goes to POST /config/, which replaces the same whole config.
   */
  async load(config: object, ifMatch?: string): Promise<void> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (ifMatch) headers['If-Match'] = ifMatch;
    const r = await this.request('POST', ifMatch ? '/config/' : '/load', JSON.stringify(config), headers);
    if (r.status < 200 || r.status > 299) throw new CaddyLoadError(errorText(r.body), r.status);
  }

  /** True when the admin API answers at all. */
  async reachable(): Promise<boolean> {
    try {
      const r = await this.request('GET', '/config/');
      return r.status > 0;
    } catch {
      return false;
    }
  }
}

export type ApplyResult = { ok: true; hash: string } | { ok: false; error: string; status?: number };

/**
 * Loads the config, then reads back what Caddy runs and compares hashes (of canonical JSON, so key order and
 * Caddy's re-serialisation do not matter). A refused load returns Caddy's error; the previous config keeps running.
 */
export async function applyConfig(client: CaddyAdminClient, config: object, opts: { ifMatch?: string } = {}): Promise<ApplyResult> {
  const hash = caddyConfigHash(config);
  try {
    await client.load(config, opts.ifMatch);
  } catch (e) {
    if (e instanceof CaddyLoadError) return { ok: false, error: e.caddyError, status: e.status ?? undefined };
    return { ok: false, error: (e as Error).message };
  }
  let running: object | null;
  try {
    running = (await client.getConfig()).config;
  } catch (e) {
    return { ok: false, error: `config loaded but could not be read back: ${(e as Error).message}` };
  }
  const got = running ? caddyConfigHash(running) : null;
  if (got !== hash)
    return { ok: false, error: `config loaded but Caddy reports a different one (drift): expected ${hash.slice(0, 12)}, got ${got?.slice(0, 12) ?? 'none'}` };
  return { ok: true, hash };
}

/** Compares Caddy's running config with the expected one. */
export async function drift(client: CaddyAdminClient, expected: object): Promise<{ inSync: boolean; reachable: boolean }> {
  let running: object | null;
  try {
    running = (await client.getConfig()).config;
  } catch {
    return { inSync: false, reachable: false };
  }
  return { inSync: running !== null && caddyConfigHash(running) === caddyConfigHash(expected), reachable: true };
}
