/**
 * Black-box harness: runs the real `argos` CLI, the real panel and gatekeeper processes (the panel starts and
 * configures real Caddy), all on loopback high ports with a fresh data directory.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The tsx loader as an absolute URL, so services can be started from any working directory. */
export const TSX = import.meta.resolve('tsx');
const ARGOS_BIN = path.join(ROOT, 'services/panel/bin/argos.mjs');

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Sends one request with the exact path given (no client-side cleaning), optionally from another 127.0.0.0/8 address. */
export function rawRequest(o: { port: number; host?: string; path: string; method?: string; headers?: Record<string, string>; body?: string; localAddress?: string }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: o.port, method: o.method ?? 'GET', path: o.path, localAddress: o.localAddress, headers: { ...(o.host ? { Host: o.host } : {}), ...o.headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('request timeout')));
    req.on('error', reject);
    if (o.body) req.write(o.body);
    req.end();
  });
}

/** A tiny upstream that echoes what it received as JSON. */
export async function startEcho(): Promise<{ port: number; requests: { headers: http.IncomingHttpHeaders; url: string; method: string }[]; close(): Promise<void> }> {
  const requests: { headers: http.IncomingHttpHeaders; url: string; method: string }[] = [];
  const server = http.createServer((req, res) => {
    const entry = { headers: req.headers, url: req.url ?? '', method: req.method ?? '' };
    requests.push(entry);
    req.resume();
    // A hostile upstream trying to plant Argos cookies (tests check Caddy neutralises them).
    const plant = (req.url ?? '').includes('plant-cookie=1') ? { 'Set-Cookie': ['argos_session=planted-by-upstream; Domain=example.test; Path=/', 'theme=dark; Path=/'] } : {};
    res.writeHead(200, { 'Content-Type': 'application/json', ...plant }).end(JSON.stringify({ upstream: 'echo', ...entry }));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { port, requests, close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Argos {
  dataDir: string;
  env: Record<string, string>;
  ports: { caddy: number; caddyHttps: number; gatekeeper: number; panel: number };
  portalHost: string;
  cli(args: string[], stdin?: string): CliResult;
  start(): Promise<void>;
  stop(): Promise<void>;
  logs(): string;
  /** Request through Caddy with a given Host. */
  viaCaddy(host: string, path: string, o?: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string }): Promise<RawResponse>;
}

export async function createArgos(extraEnv: Record<string, string> = {}): Promise<Argos> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-e2e-'));
  const ports = { caddy: await freePort(), caddyHttps: await freePort(), gatekeeper: await freePort(), panel: await freePort() };
  const portalHost = 'auth.example.test';
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? dataDir,
    ARGOS_MASTER_KEY: randomBytes(32).toString('hex'),
    ARGOS_DATA_DIR: path.join(dataDir, 'data'),
    ARGOS_PORTAL_URL: `http://${portalHost}:${ports.caddy}`,
    ARGOS_GATEKEEPER_LISTEN: `127.0.0.1:${ports.gatekeeper}`,
    ARGOS_PANEL_LISTEN: `127.0.0.1:${ports.panel}`,
    ARGOS_CADDY_HTTP_PORT: String(ports.caddy),
    ARGOS_CADDY_HTTPS_PORT: String(ports.caddyHttps),
    ARGOS_CADDY_BIND: '127.0.0.1',
    ARGOS_LOG_LEVEL: 'warn',
    ARGOS_ENV_FILE: path.join(dataDir, 'no.env'),
    ARGOS_INITIAL_ADMIN_USER: 'admin',
    ARGOS_INITIAL_ADMIN_PASSWORD: 'initial-admin-password',
    ...extraEnv,
  };
  const procs: ChildProcess[] = [];
  let output = '';

  const spawnService = (file: string) => {
    const child = spawn(process.execPath, ['--import', TSX, path.join(ROOT, file)], { env, cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    procs.push(child);
    return child;
  };

  const a: Argos = {
    dataDir,
    env,
    ports,
    portalHost,
    cli(args, stdin) {
      const r = spawnSync(process.execPath, [ARGOS_BIN, ...args], { env, cwd: dataDir, input: stdin ?? '', encoding: 'utf8', timeout: 60_000 });
      return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
    },
    async start() {
      spawnService('services/panel/src/main.ts');
      spawnService('services/gatekeeper/src/main.ts');
      for (const p of procs) p.on('exit', (code) => code && (output += `\n[process exited ${code}]\n`));
      await waitFor('gatekeeper /healthz', async () => (await rawRequest({ port: ports.gatekeeper, path: '/healthz' })).status === 200, 30_000).catch((e) => {
        throw new Error(`${e.message}\n--- service output ---\n${output}`);
      });
      await waitFor('panel /login', async () => (await rawRequest({ port: ports.panel, path: '/login' })).status === 200, 30_000).catch((e) => {
        throw new Error(`${e.message}\n--- service output ---\n${output}`);
      });
      await waitFor('Caddy serving the portal', async () => (await a.viaCaddy(`${portalHost}:${ports.caddy}`, '/login')).status === 200, 30_000).catch((e) => {
        throw new Error(`${e.message}\n--- service output ---\n${output}`);
      });
    },
    async stop() {
      await Promise.all(
        procs.map(
          (p) =>
            new Promise<void>((resolve) => {
              if (p.exitCode !== null || p.signalCode !== null) return resolve();
              const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
              p.once('exit', () => (clearTimeout(t), resolve()));
              p.kill('SIGTERM');
            }),
        ),
      );
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
    logs: () => output,
    viaCaddy(host, p, o = {}) {
      return rawRequest({ port: ports.caddy, host, path: p, ...o });
    },
  };
  return a;
}

/** Follows a login through the portal like a browser form would: GET the form (CSRF cookie + field), POST credentials. */
export async function portalLogin(a: Argos, username: string, password: string, rd: string, localAddress?: string): Promise<RawResponse & { sessionCookie: string | null }> {
  const portal = `${a.portalHost}:${a.ports.caddy}`;
  const form = await a.viaCaddy(portal, `/login?rd=${encodeURIComponent(rd)}`, { headers: { Accept: 'text/html' }, localAddress });
  const csrfCookie = (form.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]!).find((c) => c.startsWith('argos_csrf='));
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1];
  if (!csrfCookie || !csrf) throw new Error(`login form lacks CSRF: ${form.status} ${form.body.slice(0, 200)}`);
  const body = new URLSearchParams({ _csrf: csrf, username, password, rd }).toString();
  const res = await a.viaCaddy(portal, '/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: csrfCookie, Accept: 'text/html' },
    body,
    localAddress,
  });
  const sessionCookie = (res.headers['set-cookie'] ?? []).find((c) => c.startsWith('argos_session='));
  return { ...res, sessionCookie: sessionCookie ? sessionCookie.split(';')[0]! : null };
}
