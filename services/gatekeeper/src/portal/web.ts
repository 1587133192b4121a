/**
 * Portal request helpers shared by the route files: rendering, CSRF (per-browser secret cookie + HMAC field),
 * client identity, the current session, and login completion (cookie for the portal's domain, then a redirect
 * or a cross-domain handoff).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Koa from 'koa';
import pug from 'pug';
import type { Config } from '@argos/shared/config';
import type { Database } from '@argos/shared/db/sqlite';
import type { Logger } from '@argos/shared/log';
import type { Regulator } from '@argos/shared/regulation';
import type { Vault } from '@argos/shared/crypto';
import { Csrf, readCookie, requestIp, serializeCookie } from '@argos/shared/http';
import { deriveKey } from '@argos/shared/crypto';
import { domainCovers, normalizeHost } from '@argos/shared/hostname';
import { sessionAlive, type Session } from '@argos/shared/repos/sessions';
import type { GatekeeperState } from '../state.ts';
import type { UserView } from '../verify/lookups.ts';
import { browserBinding, SESSION_COOKIE, type Credentials } from '../identity/credentials.ts';
import type { SessionIssuer } from '../identity/sessions.ts';
import { safeReturnUrl } from './return-url.ts';
import { isSsoMethod } from '@argos/shared/oidc/mode';
import { ssoConfigured } from '@argos/shared/oidc/mode';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VIEW_NAMES = ['login', 'totp', 'home', 'message', 'account', 'enroll', 'codes', 'token'] as const;
type ViewName = (typeof VIEW_NAMES)[number];
const VIEWS = Object.fromEntries(VIEW_NAMES.map((n) => [n, pug.compileFile(path.join(HERE, 'views', `${n}.pug`))])) as Record<ViewName, pug.compileTemplate>;

export const CSRF_COOKIE = 'argos_csrf';

export interface PortalDeps {
  config: Config;
  db: Database;
  vault: Vault;
  state: GatekeeperState;
  regulator: Regulator;
  credentials: Credentials;
  sessions: SessionIssuer;
  log: Logger;
}

export interface Client {
  ip: string;
  userAgent: string | null;
}

export class PortalWeb {
  readonly secure: boolean;
  readonly portalHost: string;
  readonly home: string;
  private readonly csrf: Csrf;

  constructor(readonly deps: PortalDeps) {
    this.secure = deps.config.portalUrl.protocol === 'https:';
    this.portalHost = normalizeHost(deps.config.portalUrl.host) ?? '';
    this.home = new URL('/', deps.config.portalUrl).toString();
    this.csrf = new Csrf(deriveKey(deps.config.masterKey, 'portal-csrf'));
  }

  render(ctx: Koa.Context, name: ViewName, locals: Record<string, unknown>, status = 200): void {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = VIEWS[name]({ title: this.deps.state.settings['portal.title'], csrf: this.csrfToken(ctx), sso: this.ssoLabel(), ...locals });
  }

  /** The SSO button's label when single sign-on is on and configured, else null (no button). */
  ssoLabel(): string | null {
    const s = this.deps.state.settings;
    return ssoConfigured(this.deps.config, s) ? s['oidc.button_label'] || 'Sign in with single sign-on' : null;
  }

  message(ctx: Koa.Context, status: number, heading: string, text: string, link?: { href: string; label: string }): void {
    this.render(ctx, 'message', { heading, text, link }, status);
  }

  /** The per-browser CSRF secret (cookie), created when missing; the form field is its HMAC. */
  private browserSecret(ctx: Koa.Context): string {
    let s = readCookie(ctx.get('cookie'), CSRF_COOKIE) ?? (ctx.state.newCsrf as string | undefined) ?? null;
    if (!s || !/^[A-Za-z0-9_-]{16,64}$/.test(s)) {
      s = this.csrf.newBrowserSecret();
      ctx.state.newCsrf = s;
      ctx.append('Set-Cookie', serializeCookie(CSRF_COOKIE, s, { secure: this.secure, sameSite: 'Lax' }));
    }
    return s;
  }

  csrfToken(ctx: Koa.Context): string {
    return this.csrf.token(this.browserSecret(ctx));
  }

  csrfOk(ctx: Koa.Context): boolean {
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    return this.csrf.verify(readCookie(ctx.get('cookie'), CSRF_COOKIE), body._csrf);
  }

  /** A hash of the browser's CSRF secret: binds pending challenges to the browser that started them. */
  browserId(ctx: Koa.Context): string | null {
    const s = readCookie(ctx.get('cookie'), CSRF_COOKIE);
    return s ? this.csrf.token(`browser:${s}`) : null;
  }

  client(ctx: Koa.Context): Client {
    return { ip: requestIp(ctx.req, this.deps.config.trustedProxies), userAgent: ctx.get('user-agent').slice(0, 300) || null };
  }

  rd(raw: unknown): string | null {
    const { state, config } = this.deps;
    return safeReturnUrl(raw, { portal: config.portalUrl, isKnownHost: (h) => state.hosts.has(h) });
  }

  body(ctx: Koa.Context): Record<string, string> {
    const b = (ctx.request.body ?? {}) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(b).map(([k, v]) => [k, typeof v === 'string' ? v.slice(0, 4096) : '']));
  }

  cookieDomainFor(host: string): string | null {
    return this.deps.state.cookieDomains.find((d) => domainCovers(d, host)) ?? null;
  }

  /** The signed-in visitor: a live portal session of an enabled user. */
  async current(ctx: Koa.Context): Promise<{ token: string; session: Session; user: UserView } | null> {
    const token = readCookie(ctx.get('cookie'), SESSION_COOKIE);
    if (!token) return null;
    const { state } = this.deps;
    const session = await state.session(token, false);
    if (!session || session.kind !== 'portal' || !sessionAlive(session, state.now())) return null;
    // Break glass: with single sign-on off, sessions it created open nothing, the account page included.
    if (isSsoMethod(session.authMethod) && state.lookups(true).ssoEnabled?.() === false) return null;
    const user = state.users.get(session.userId);
    return user && !user.disabled ? { token, session, user } : null;
  }

  setSessionCookie(ctx: Koa.Context, token: string, maxAgeS: number | null): void {
    ctx.append('Set-Cookie', serializeCookie(SESSION_COOKIE, token, { domain: this.cookieDomainFor(this.portalHost), secure: this.secure, maxAgeS }));
  }

  clearSessionCookie(ctx: Koa.Context): void {
    for (const domain of new Set([this.cookieDomainFor(this.portalHost), null])) {
      ctx.append('Set-Cookie', serializeCookie(SESSION_COOKIE, '', { domain, secure: this.secure, maxAgeS: 0 }));
    }
  }

  /**
   * Sends a signed-in visitor on to `rd`: directly when the portal's cookie covers the target host, otherwise
   * through a one-time handoff on the target host (which sets its own cookie).
   */
  continueTo(ctx: Koa.Context, rd: string | null, s: { userId: number; factors: number; authMethod: string; remember: boolean }, client: Client): void {
    const target = new URL(rd ?? this.home);
    const host = normalizeHost(target.host) ?? '';
    const portalDomain = this.cookieDomainFor(this.portalHost);
    ctx.status = 303;
    if (host === this.portalHost || (portalDomain && domainCovers(portalDomain, host))) return ctx.redirect(target.toString());
    const t = this.deps.credentials.createHandoff({ ...s, host, rd: target.toString(), binding: browserBinding(client.ip, client.userAgent) });
    ctx.redirect(`${target.origin}/.argos/handoff?t=${encodeURIComponent(t)}`);
  }
}
