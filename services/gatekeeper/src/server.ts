/**
 * The gatekeeper's HTTP entry: /verify (parse → decide → respond) on a bare node:http path for speed,
 * /healthz and /metrics, and everything else to the portal's Koa app.
 * Requests that came through the portal's Caddy route carry `X-Argos-Portal` and can reach only the portal.
 */
import http from 'node:http';
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
  res.writeHead(a.status, { ...a.headers, 'X-Argos-Request-Id': requestId, 'Content-Length': Buffer.byteLength(a.body) });
  res.end(method === 'HEAD' ? undefined : a.body);
}

export function createVerifyHandler(deps: ServerDeps) {
  const { config, state, decisions, metrics, log } = deps;
  // One live Lookups for all requests (built on the first one, when main has wired the state's credentials). It holds
  // no per-request data: every lookup reads the state's current maps when called. Building it per request cost about
  // 7 µs of the hot path: ~16 closures, and under tsx (esbuild keepNames) every closure creation is an
  // Object.defineProperty. Measured with `npm run bench` (docs/PERFORMANCE.md).
  let live: Lookups | null = null;
  return async function handleVerify(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const requestId = randomUUID();
    const parsed = parseVerify(req.socket.remoteAddress ?? '', req.headers, config.trustedProxies, requestId);
    if (!parsed.ok) {
      log.warn({ requestId, peer: req.socket.remoteAddress, reason: parsed.reason, detail: parsed.detail }, 'verify refused');
      metrics.decision(parsed.reason === 'untrusted_proxy' ? 'deny' : 'bad_request', parsed.reason, started);
      return send(res, req.method, refuse(parsed.status), requestId);
    }
    const t = parsed.target;
    let answer: HttpAnswer;
    let verdictKind: string;
    let reason: string;
    let user: string | null = null;
    let country: string | null = null;
    try {
      const d = await decide(t, (live ??= state.lookups()));
      answer = respond(d.verdict, t, config.portalUrl, { basicRealm: d.ctx.host?.allowBasic });
      verdictKind = d.verdict.kind;
      reason = d.verdict.reason;
      user = d.ctx.identity?.username ?? null;
      country = d.ctx.country;
    } catch (err) {
      log.error({ err, requestId }, 'decision failed: denying');
      answer = respond({ kind: 'deny', reason: 'internal_error' }, t, config.portalUrl);
      verdictKind = 'deny';
      reason = 'internal_error';
    }
    send(res, req.method, answer, requestId);
    const latencyUs = metrics.decision(verdictKind, reason, started);
    decisions.push({
      ts: state.now(),
      requestId,
      host: t.host,
      method: t.method,
      path: t.path,
      ip: t.clientIp,
      country,
      user,
      verdict: verdictKind,
      reason,
      status: answer.status,
      latencyUs,
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
    if (path === '/verify' && !req.headers['x-argos-portal']) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD' }).end();
        return;
      }
      verify(req, res).catch((err) => {
        deps.log.error({ err }, 'verify crashed');
        if (!res.headersSent) res.writeHead(403, { 'Content-Type': 'application/json' }).end('{"error":"forbidden"}');
      });
      return;
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
