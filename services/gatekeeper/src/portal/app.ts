/**
 * The visitor login portal (served by the gatekeeper, published through Caddy as its own host):
 * GET/POST /login, POST /logout, and a small home page. Routes stay thin: parse the form,
 * call the login service, render or redirect.
 */
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import Koa from 'koa';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import pug from 'pug';
import type { Config } from '@argos/shared/config';
import type { Database } from '@argos/shared/db/sqlite';
import type { Logger } from '@argos/shared/log';
import type { Regulator } from '@argos/shared/regulation';
import { Csrf, readCookie, requestIp, securityHeaders, serializeCookie } from '@argos/shared/http';
import { deriveKey } from '@argos/shared/crypto';
import { domainCovers, normalizeHost } from '@argos/shared/hostname';
import type { GatekeeperState } from '../state.ts';
import { safeReturnUrl } from './return-url.ts';
import { LoginService } from './login.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const view = (name: string) => pug.compileFile(path.join(HERE, 'views', `${name}.pug`));
const VIEWS = { login: view('login'), home: view('home'), message: view('message') };
const CSS = fs.readFileSync(path.join(HERE, 'static', 'portal.css'));

export const SESSION_COOKIE = 'argos_session';
const CSRF_COOKIE = 'argos_csrf';

export interface PortalDeps {
  config: Config;
  db: Database;
  state: GatekeeperState;
  regulator: Regulator;
  log: Logger;
}

export function createPortal(deps: PortalDeps): Koa {
  const { config, state } = deps;
  const secure = config.portalUrl.protocol === 'https:';
  const csrf = new Csrf(deriveKey(config.masterKey, 'portal-csrf'));
  const login = new LoginService(deps);
  const portalHost = normalizeHost(config.portalUrl.host) ?? '';
  const rdPolicy = { portal: config.portalUrl, isKnownHost: (h: string) => state.hosts.has(h) };
  const home = new URL('/', config.portalUrl).toString();

  /** The configured cookie domain that covers a host, or null (host-only cookie). */
  const cookieDomainFor = (host: string) => state.cookieDomains.find((d) => domainCovers(d, host)) ?? null;

  const app = new Koa();
  const router = new Router();

  app.use(async (ctx, next) => {
    ctx.set(securityHeaders({ hsts: secure }));
    try {
      await next();
    } catch (err) {
      deps.log.error({ err, path: ctx.path }, 'portal error');
      ctx.status = 500;
      ctx.type = 'html';
      ctx.body = render('message', { heading: 'Something went wrong', text: 'Please try again in a moment.' });
    }
  });
  app.use(bodyParser({ enableTypes: ['form'], formLimit: '16kb' }));

  const render = (name: keyof typeof VIEWS, locals: Record<string, unknown>) =>
    VIEWS[name]({ title: state.settings['portal.title'], ...locals });

  /** The per-browser CSRF secret (cookie), created when missing. */
  const browserSecret = (ctx: Koa.Context): string => {
    let s = readCookie(ctx.get('cookie'), CSRF_COOKIE);
    if (!s || !/^[A-Za-z0-9_-]{16,64}$/.test(s)) {
      s = csrf.newBrowserSecret();
      ctx.append('Set-Cookie', serializeCookie(CSRF_COOKIE, s, { secure, sameSite: 'Lax' }));
    }
    return s;
  };

  const client = (ctx: Koa.Context) => ({ ip: requestIp(ctx.req, config.trustedProxies), userAgent: ctx.get('user-agent').slice(0, 300) || null });

  const showLogin = (ctx: Koa.Context, status: number, locals: { rd?: string | null; error?: string; username?: string }) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = render('login', { pageTitle: 'Sign in', csrf: csrf.token(browserSecret(ctx)), ...locals });
  };

  router.get('/static/portal.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = CSS;
  });

  router.get('/login', (ctx) => {
    showLogin(ctx, 200, { rd: safeReturnUrl(ctx.query.rd, rdPolicy) });
  });

  router.post('/login', async (ctx) => {
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    const rd = safeReturnUrl(body.rd, rdPolicy);
    const username = typeof body.username === 'string' ? body.username.slice(0, 128) : '';
    if (!csrf.verify(readCookie(ctx.get('cookie'), CSRF_COOKIE), body._csrf)) {
      return showLogin(ctx, 403, { rd, username, error: 'Your sign-in form expired. Please try again.' });
    }
    const result = await login.passwordLogin({
      username,
      password: typeof body.password === 'string' ? body.password : '',
      remember: body.remember === '1',
      ...client(ctx),
    });
    if (result.kind === 'blocked') {
      ctx.set('Retry-After', String(result.retryAfterS));
      return showLogin(ctx, 429, { rd, username, error: `Too many failed sign-ins. Try again in ${Math.ceil(result.retryAfterS / 60)} minute(s).` });
    }
    if (result.kind === 'failed') return showLogin(ctx, 401, { rd, username, error: 'Invalid username or password.' });
    const target = rd ? new URL(rd) : new URL(home);
    ctx.append(
      'Set-Cookie',
      serializeCookie(SESSION_COOKIE, result.token, {
        domain: cookieDomainFor(normalizeHost(target.host) ?? portalHost) ?? cookieDomainFor(portalHost),
        secure,
        maxAgeS: result.remember ? result.lifetimeS : null,
      }),
    );
    ctx.status = 303;
    ctx.redirect(target.toString());
  });

  const logout = async (ctx: Koa.Context) => {
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    if (!csrf.verify(readCookie(ctx.get('cookie'), CSRF_COOKIE), body._csrf)) {
      ctx.status = 403;
      ctx.type = 'html';
      ctx.body = render('message', { heading: 'Sign out failed', text: 'The form expired. Go back and try again.', link: { href: '/', label: 'Back' } });
      return;
    }
    const token = readCookie(ctx.get('cookie'), SESSION_COOKIE);
    if (token) await login.logout(token, client(ctx));
    for (const domain of new Set([cookieDomainFor(portalHost), null])) {
      ctx.append('Set-Cookie', serializeCookie(SESSION_COOKIE, '', { domain, secure, maxAgeS: 0 }));
    }
    ctx.status = 303;
    ctx.redirect(safeReturnUrl(body.rd, rdPolicy) ?? new URL('/login', config.portalUrl).toString());
  };
  router.post('/logout', logout);

  router.get('/logout', (ctx) => {
    ctx.type = 'html';
    ctx.body = render('home', { pageTitle: 'Sign out', user: null, csrf: csrf.token(browserSecret(ctx)) });
  });

  router.get('/', async (ctx) => {
    const token = readCookie(ctx.get('cookie'), SESSION_COOKIE);
    const user = token ? await login.currentUser(token) : null;
    if (!user) return ctx.redirect('/login');
    ctx.type = 'html';
    ctx.body = render('home', { user, csrf: csrf.token(browserSecret(ctx)) });
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  app.use((ctx) => {
    ctx.status = 404;
    ctx.type = 'html';
    ctx.body = render('message', { heading: 'Not found', text: 'There is nothing here.', link: { href: '/', label: 'Portal home' } });
  });
  return app;
}
