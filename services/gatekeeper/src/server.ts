/**
 * The gatekeeper's HTTP entry: /verify (parse → decide → respond) on a bare node:http path for speed,
 * /healthz and /metrics, and everything else to the portal's Koa app.
 * Requests that came through the portal's Caddy route carry `X-Argos-Portal` and can reach only the portal.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import type { Config } from '@argos/shared/config';
import type { Logger } from '@argos/shared/log';
import { inAnyCidr, normalizeIp, parseCidr } from '@argos/shared/net';
import type { GatekeeperState } from './state.ts';
import type { DecisionLog } from './decision-log.ts';
import type { Metrics } from './metrics.ts';
import { parseVerify } from './verify/parse.ts';
import { decide } from './verify/decide.ts';
import { refuse, respond, type HttpAnswer } from './verify/respond.ts';
import type { Target } from './verify/target.ts';
import type { Decision } from './verify/verdict.ts';
import type { Lookups } from './verify/lookups.ts';

export interface ServerDeps {
  config: Config;
  state: GatekeeperState;
  decisions: DecisionLog;
  metrics: Metrics;
  portal: Koa;
  log: Logger;
  health: () => Promise<Record<string, unknown>>;
}

function send(res: http.ServerResponse, method: string | undefined, a: HttpAnswer, requestId: string): void {
  const headers: Record<string, string | number> = a.headers;
  headers['X-Argos-Request-Id'] = requestId;
  headers['Content-Length'] = a.body ? Buffer.byteLength(a.body) : 0;
  res.writeHead(a.status, headers);
  res.end(method === 'HEAD' || !a.body ? undefined : a.body);
}

/** The request headers /verify reads, with Node's rules for repeats (see forwardHeaders). */
const READ = new Set(['host', 'cookie', 'authorization', 'user-agent', 'accept', 'upgrade', 'x-requested-with', 'sec-fetch-mode', 'sec-fetch-dest', 'x-forwarded-method', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-uri', 'x-forwarded-for', 'x-argos-portal']);
/** Headers of which Node keeps the first and drops repeats (as req.headers does); any other repeat is joined with ", ". */
const FIRST_WINS = new Set(['host', 'authorization', 'user-agent']);

/**
 * Only the headers /verify reads, straight from the raw header list: building the full `req.headers` object costs
 * more than the whole parse on the hot path. Repeats follow Node's req.headers exactly (cookie joined with "; ",
 * host/authorization/user-agent first wins, others joined with ", ", so a repeated X-Forwarded-Uri fails to parse).
 */
export function forwardHeaders(raw: readonly string[]): IncomingHttpHeaders {
  const h: IncomingHttpHeaders = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!READ.has(name)) continue;
    const value = raw[i + 1]!;
    const prev = h[name] as string | undefined;
    if (prev === undefined) h[name] = value;
    else if (name === 'cookie') h[name] = `${prev}; ${value}`;
    else if (!FIRST_WINS.has(name)) h[name] = `${prev}, ${value}`;
  }
  return h;
}

export function createVerifyHandler(deps: ServerDeps) {
  const { config, state, decisions, metrics, log } = deps;
  // One live Lookups for all requests (built on the first one, when main has wired the state's credentials). It holds
  // no per-request data: every lookup reads the state's current maps when called. Building it per request cost about
  // 7 µs of the hot path: ~16 closures, and under tsx (esbuild keepNames) every closure creation is an
  // Object.defineProperty. Measured with `npm run bench` (docs/PERFORMANCE.md).
  let live: Lookups | null = null;

  function answer(req: http.IncomingMessage, res: http.ServerResponse, t: Target, d: Decision, started: number, requestId: string): void {
    const a = respond(d.verdict, t, config.portalUrl, { basicRealm: d.ctx.host?.allowBasic });
    send(res, req.method, a, requestId);
    record(t, d.verdict.kind, d.verdict.reason, a.status, d.ctx.identity?.username ?? null, d.ctx.country, started, requestId);
  }

  function failed(req: http.IncomingMessage, res: http.ServerResponse, t: Target, err: unknown, started: number, requestId: string): void {
    log.error({ err, requestId }, 'decision failed: denying');
    const a = respond({ kind: 'deny', reason: 'internal_error' }, t, config.portalUrl);
    send(res, req.method, a, requestId);
    record(t, 'deny', 'internal_error', a.status, null, null, started, requestId);
  }

  function record(t: Target, verdict: string, reason: string, status: number, user: string | null, country: string | null, started: number, requestId: string): void {
    const latencyUs = metrics.decision(verdict, reason, started);
    decisions.push({ ts: state.now(), requestId, host: t.host, method: t.method, path: t.path, ip: t.clientIp, country, user, verdict, reason, status, latencyUs });
  }

  /** Answers one /verify request: synchronously when every check did (the common case), else when the decision settles. */
  return function handleVerify(req: http.IncomingMessage, res: http.ServerResponse, headers: IncomingHttpHeaders): void {
    const started = performance.now();
    const requestId = randomUUID();
    const parsed = parseVerify(req.socket.remoteAddress ?? '', headers, config.trustedProxies, requestId);
    if (!parsed.ok) {
      log.warn({ requestId, peer: req.socket.remoteAddress, reason: parsed.reason, detail: parsed.detail }, 'verify refused');
      metrics.decision(parsed.reason === 'untrusted_proxy' ? 'deny' : 'bad_request', parsed.reason, started);
      return send(res, req.method, refuse(parsed.status), requestId);
    }
    const t = parsed.target;
    let d: Decision | Promise<Decision>;
    try {
      d = decide(t, (live ??= state.lookups()));
    } catch (err) {
      return failed(req, res, t, err, started, requestId);
    }
    if (!(d instanceof Promise)) return answer(req, res, t, d, started, requestId);
    d.then(
      (done) => answer(req, res, t, done, started, requestId),
      (err: unknown) => failed(req, res, t, err, started, requestId),
    ).catch((err: unknown) => {
      log.error({ err, requestId }, 'verify crashed');
      if (!res.headersSent) res.writeHead(403, { 'Content-Type': 'application/json' }).end('{"error":"forbidden"}');
    });
  };
}

export function createGatekeeperServer(deps: ServerDeps): http.Server {
  const verify = createVerifyHandler(deps);
  const portal = deps.portal.callback();
  /** /healthz and /metrics: for loopback (container healthchecks) and the trusted proxies, never via the portal route. */
  const loopback = [parseCidr('127.0.0.0/8')!, parseCidr('::1/128')!];
  const fromTrusted = (req: http.IncomingMessage) => {
    const peer = normalizeIp(req.socket.remoteAddress ?? '');
    return !!peer && (inAnyCidr(loopback, peer) || inAnyCidr(deps.config.trustedProxies, peer)) && !req.headers['x-argos-portal'];
  };

  const server = http.createServer((req, res) => {
    const q = req.url?.indexOf('?') ?? -1;
    const path = q >= 0 ? req.url!.slice(0, q) : (req.url ?? '/');
    if (path === '/verify') {
      const headers = forwardHeaders(req.rawHeaders);
      if (!headers['x-argos-portal']) {
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          res.writeHead(405, { Allow: 'GET, HEAD' }).end();
          return;
        }
        try {
          verify(req, res, headers);
        } catch (err) {
          deps.log.error({ err }, 'verify crashed');
          if (!res.headersSent) res.writeHead(403, { 'Content-Type': 'application/json' }).end('{"error":"forbidden"}');
        }
        return;
      }
    }
    if (path === '/healthz' && fromTrusted(req)) {
      deps
        .health()
        .then((h) => {
          res.writeHead(h.status === 'ok' ? 200 : 503, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(h));
        })
        .catch(() => res.writeHead(503).end());
      return;
    }
    if (path === '/metrics' && fromTrusted(req)) {
      deps.metrics
        .render()
        .then((text) => res.writeHead(200, { 'Content-Type': deps.metrics.contentType }).end(text))
        .catch(() => res.writeHead(500).end());
      return;
    }
    if (path === '/verify' || path === '/metrics' || path === '/healthz') {
      res.writeHead(404).end();
      return;
    }
    portal(req, res);
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;
  return server;
}
