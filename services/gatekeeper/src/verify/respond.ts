/**
 * respond: the one place that turns a verdict into HTTP for Caddy.
 * allow → 200 + Remote-* · login → 302/303 to the portal (top-level navigations) or 401 JSON ·
 * deny → 403 · rate_limited → 429 + Retry-After. The reason code is never sent to the client.
 */
import type { Target } from './target.ts';
import { originalUrl } from './target.ts';
import type { Identity, Verdict } from './verdict.ts';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const HTML_TYPE = 'text/html; charset=utf-8';

/** Header values must not carry CR/LF or non-Latin-1; anything else is dropped rather than sent. */
const headerSafe = (v: string) => (/^[\x20-\x7e\u00a0-\u00ff]*$/.test(v) ? v : encodeURIComponent(v));

export function identityHeaders(id: Identity): Record<string, string> {
  const h: Record<string, string> = { 'Remote-User': headerSafe(id.username) };
  if (id.email) h['Remote-Email'] = headerSafe(id.email);
  if (id.name) h['Remote-Name'] = headerSafe(id.name);
  if (id.groups.length) h['Remote-Groups'] = headerSafe(id.groups.join(','));
  return h;
}

export function loginUrl(portal: URL, rd: string | null): string {
  const u = new URL('/login', portal);
  if (rd) u.searchParams.set('rd', rd);
  return u.toString();
}

export function enrollUrl(portal: URL, rd: string): string {
  const u = new URL('/account/totp', portal);
  u.searchParams.set('rd', rd);
  return u.toString();
}

const page = (title: string, text: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${title}</title></head>` +
  `<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem"><h1>${title}</h1><p>${text}</p></body></html>`;

export function respond(verdict: Verdict, target: Target, portal: URL, opts: { basicRealm?: boolean } = {}): HttpAnswer {
  const nav = target.clientKind === 'navigation';
  switch (verdict.kind) {
    case 'allow': {
      const headers = verdict.identity ? identityHeaders(verdict.identity) : {};
      // Tells Caddy to drop the Authorization header Argos consumed, so the upstream never sees the token or password.
      if (verdict.identity && verdict.identity.via !== 'session') headers['X-Argos-Credential'] = verdict.identity.via;
      return { status: 200, headers, body: '' };
    }
    case 'login': {
      if (nav) {
        const location = loginUrl(portal, target.topLevel ? originalUrl(target) : null);
        const status = target.method === 'GET' || target.method === 'HEAD' ? 302 : 303;
        return { status, headers: { Location: location, 'Content-Type': HTML_TYPE, 'Cache-Control': 'no-store' }, body: '' };
      }
      const challenge = ['Bearer realm="argos"'];
      if (opts.basicRealm) challenge.push('Basic realm="argos", charset="UTF-8"');
      return {
        status: 401,
        headers: { 'WWW-Authenticate': challenge.join(', '), 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-store' },
        body: JSON.stringify({ error: 'unauthorized', login_url: loginUrl(portal, `${target.proto}://${target.authority}/`) }),
      };
    }
    case 'enroll':
      return nav && target.topLevel
        ? { status: 302, headers: { Location: enrollUrl(portal, originalUrl(target)), 'Cache-Control': 'no-store' }, body: '' }
        : { status: 403, headers: { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-store' }, body: JSON.stringify({ error: 'second_factor_required' }) };
    case 'redirect':
      return { status: 302, headers: { Location: verdict.location, 'Set-Cookie': verdict.setCookie, 'Cache-Control': 'no-store' }, body: '' };
    case 'rate_limited':
      return nav
        ? { status: 429, headers: { 'Retry-After': String(verdict.retryAfterS), 'Content-Type': HTML_TYPE }, body: page('Too many requests', `Please wait ${verdict.retryAfterS} seconds and try again.`) }
        : { status: 429, headers: { 'Retry-After': String(verdict.retryAfterS), 'Content-Type': JSON_TYPE }, body: JSON.stringify({ error: 'too_many_requests', retry_after: verdict.retryAfterS }) };
    case 'deny':
    default:
      if (verdict.reason === 'second_factor_required') {
        return nav
          ? { status: 403, headers: { 'Content-Type': HTML_TYPE, 'Cache-Control': 'no-store' }, body: page('Two-factor authentication required', 'This site requires two-factor authentication, and it is not set up for your account. Ask the operator to enable it for you.') }
          : { status: 403, headers: { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-store' }, body: JSON.stringify({ error: 'second_factor_required' }) };
      }
      return nav
        ? { status: 403, headers: { 'Content-Type': HTML_TYPE, 'Cache-Control': 'no-store' }, body: page('Access denied', 'You do not have access to this page.') }
        : { status: 403, headers: { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-store' }, body: JSON.stringify({ error: 'forbidden' }) };
  }
}

/** The answer for a request that could not be parsed (400) or came from an untrusted peer (403). */
export function refuse(status: 400 | 403): HttpAnswer {
  return {
    status,
    headers: { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-store' },
    body: JSON.stringify({ error: status === 400 ? 'bad_request' : 'forbidden' }),
  };
}
