/** Small HTTP helpers shared by the portal and the panel: cookies, CSRF tokens, client IP, security headers. */
import type { IncomingMessage } from 'node:http';
import { hmac, randomToken, safeEqual } from './crypto.ts';
import { inAnyCidr, normalizeIp, type Cidr } from './net.ts';

export interface CookieOptions {
  domain?: string | null;
  path?: string;
  maxAgeS?: number | null;
  secure: boolean;
  httpOnly?: boolean;
  sameSite?: 'Lax' | 'Strict';
}

export function serializeCookie(name: string, value: string, o: CookieOptions): string {
  const parts = [`${name}=${value}`, `Path=${o.path ?? '/'}`];
  if (o.domain) parts.push(`Domain=${o.domain}`);
  if (o.maxAgeS !== undefined && o.maxAgeS !== null) parts.push(`Max-Age=${Math.max(0, Math.floor(o.maxAgeS))}`);
  if (o.httpOnly !== false) parts.push('HttpOnly');
  parts.push(`SameSite=${o.sameSite ?? 'Lax'}`);
  if (o.secure) parts.push('Secure');
  return parts.join('; ');
}

/** Reads one cookie; a cookie sent twice (e.g. tossed from a sibling subdomain) counts as absent. */
export function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  let found: string | null = null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    if (found !== null) return null;
    found = part.slice(eq + 1).trim();
  }
  return found;
}

/** The client IP of a request: the peer, or X-Forwarded-For (right to left) when the peer is a trusted proxy. */
export function requestIp(req: IncomingMessage, trusted: readonly Cidr[]): string {
  const peer = normalizeIp(req.socket.remoteAddress ?? '') ?? '0.0.0.0';
  if (!inAnyCidr(trusted, peer)) return peer;
  const xff = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(xff) ? xff.join(',') : (xff ?? '')).split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const ip = normalizeIp(hops[i]!);
    if (!ip) return peer;
    // Every hop trusted: the leftmost is the client (as /verify's clientIp reads it), never the proxy itself.
    if (i === 0 || !inAnyCidr(trusted, ip)) return ip;
  }
  return peer;
}

/**
 * CSRF tokens: the form field is an HMAC of a per-browser (pre-login) or per-session secret, so a value
 * planted in a cookie from a sibling subdomain is useless without the server key.
 */
export class Csrf {
  constructor(private readonly key: Buffer) {}

  newBrowserSecret(): string {
    return randomToken(18);
  }

  token(secret: string): string {
    return hmac(this.key, secret);
  }

  verify(secret: string | null | undefined, token: unknown): boolean {
    return !!secret && typeof token === 'string' && safeEqual(this.token(secret), token);
  }
}

/** Headers every HTML page of Argos sends. */
export function securityHeaders(opts: { hsts: boolean; csp?: string }): Record<string, string> {
  const h: Record<string, string> = {
    'Content-Security-Policy':
      opts.csp ?? "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    'X-Frame-Options': 'DENY',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cache-Control': 'no-store',
  };
  if (opts.hsts) h['Strict-Transport-Security'] = 'max-age=31536000';
  return h;
}
