/**
 * parse: forwarded headers → a typed Target, or a refusal naming the header.
 * Only trusted proxies are answered; the client IP is X-Forwarded-For read right to left, skipping trusted proxies.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { inAnyCidr, normalizeIp, type Cidr } from '@argos/shared/net';
import { normalizeHost } from '@argos/shared/hostname';
import { normalizeUri } from './uri.ts';
import type { ClientKind, Target } from './target.ts';

export type ParseResult = { ok: true; target: Target } | { ok: false; status: 400 | 403; reason: string; detail: string };

const METHOD = /^[A-Z]{1,16}$/;
const SESSION_COOKIE = 'argos_session';

const one = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/** Picks the session token out of a Cookie header. A repeated argos_session cookie is treated as none. */
export function sessionCookie(cookieHeader: string | undefined, name = SESSION_COOKIE): string | null {
  if (!cookieHeader) return null;
  let found: string | null = null;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    if (found !== null) return null;
    found = part.slice(eq + 1).trim();
  }
  return found && /^[A-Za-z0-9_-]{20,100}$/.test(found) ? found : null;
}

/** Classifies the client: a top-level browser navigation, another navigation, or an API/XHR/WebSocket client. */
export function classifyClient(method: string, h: IncomingHttpHeaders): { kind: ClientKind; topLevel: boolean } {
  const api = { kind: 'api' as const, topLevel: false };
  if (method === 'OPTIONS') return api;
  if ((one(h, 'upgrade') ?? '').toLowerCase().includes('websocket')) return api;
  if (one(h, 'authorization')) return api;
  if (one(h, 'x-requested-with')) return api;
  const mode = one(h, 'sec-fetch-mode')?.toLowerCase();
  const dest = one(h, 'sec-fetch-dest')?.toLowerCase();
  if (mode !== undefined || dest !== undefined) {
    const nav = mode === 'navigate' || dest === 'document';
    if (!nav) return api;
    const topLevel = dest === undefined || dest === 'document';
    return { kind: topLevel ? 'navigation' : 'api', topLevel };
  }
  const accept = (one(h, 'accept') ?? '').toLowerCase();
  return accept.includes('text/html') ? { kind: 'navigation', topLevel: true } : api;
}

/** The client IP: X-Forwarded-For right to left, skipping trusted proxies; the peer itself when no header. */
export function clientIp(peer: string, xff: string | undefined, trusted: readonly Cidr[]): string | null {
  if (!xff) return peer;
  const hops = xff.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const ip = normalizeIp(hops[i]!.trim());
    if (!ip) return null;
    if (i === 0 || !inAnyCidr(trusted, ip)) return ip;
  }
  return null;
}

/**
 * Small memos for the few values that repeat on every request: the proxy's address and the published host names.
 * Bounded (cleared when full), so hostile variety costs a re-computation, never memory.
 */
const MEMO_MAX = 1024;
const trustMemo = new WeakMap<readonly Cidr[], Map<string, boolean>>();
const hostMemo = new Map<string, string | null>();

function peerTrusted(peerRaw: string, trusted: readonly Cidr[]): boolean {
  let memo = trustMemo.get(trusted);
  if (!memo) trustMemo.set(trusted, (memo = new Map()));
  let ok = memo.get(peerRaw);
  if (ok === undefined) {
    const peer = normalizeIp(peerRaw);
    ok = !!peer && inAnyCidr(trusted, peer);
    if (memo.size >= MEMO_MAX) memo.clear();
    memo.set(peerRaw, ok);
  }
  return ok;
}

function hostOf(authority: string): string | null {
  let host = hostMemo.get(authority);
  if (host === undefined) {
    host = normalizeHost(authority);
    if (hostMemo.size >= MEMO_MAX) hostMemo.clear();
    hostMemo.set(authority, host);
  }
  return host;
}

// Module level, not a closure per call: under tsx (esbuild keepNames) creating a closure costs an Object.defineProperty.
const bad = (header: string, why: string): ParseResult => ({ ok: false, status: 400, reason: 'bad_request', detail: `${header}: ${why}` });

/**
 * Parses a /verify request. `peer` is the TCP peer address. Returns 403 for untrusted peers and
 * 400 for anything malformed, never a guess.
 */
export function parseVerify(peerRaw: string, h: IncomingHttpHeaders, trusted: readonly Cidr[], requestId: string): ParseResult {
  if (!peerTrusted(peerRaw, trusted)) {
    return { ok: false, status: 403, reason: 'untrusted_proxy', detail: `peer ${peerRaw} is not in ARGOS_TRUSTED_PROXIES` };
  }
  const method = one(h, 'x-forwarded-method');
  if (!method || !METHOD.test(method)) return bad('X-Forwarded-Method', 'missing or not an HTTP method');
  const proto = one(h, 'x-forwarded-proto');
  if (proto !== 'http' && proto !== 'https') return bad('X-Forwarded-Proto', 'missing or not http/https');
  const authority = one(h, 'x-forwarded-host') ?? one(h, 'host');
  if (!authority) return bad('X-Forwarded-Host', 'missing');
  const host = hostOf(authority);
  if (!host) return bad('X-Forwarded-Host', 'not a valid host name');
  const rawUri = one(h, 'x-forwarded-uri');
  if (!rawUri) return bad('X-Forwarded-Uri', 'missing');
  const uri = normalizeUri(rawUri);
  if (!uri.ok) return bad('X-Forwarded-Uri', uri.error);
  const xff = h['x-forwarded-for'];
  const xffText = Array.isArray(xff) ? xff.join(',') : xff;
  // Without X-Forwarded-For the client is the (trusted) peer itself.
  const ip = xffText ? clientIp('', xffText, trusted) : normalizeIp(peerRaw);
  if (!ip) return bad('X-Forwarded-For', 'contains something that is not an IP address');
  const client = classifyClient(method, h);
  const cookie = h.cookie;

  return {
    ok: true,
    target: {
      requestId,
      method,
      proto,
      host,
      authority: authority.toLowerCase(),
      path: uri.path,
      query: uri.query,
      rawUri,
      clientIp: ip,
      clientKind: client.kind,
      topLevel: client.topLevel,
      sessionToken: sessionCookie(Array.isArray(cookie) ? cookie.join('; ') : cookie),
      authorization: one(h, 'authorization') ?? null,
      userAgent: one(h, 'user-agent')?.slice(0, 300) ?? null,
    },
  };
}
