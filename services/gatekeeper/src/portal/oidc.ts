/**
 * Portal single sign-on: POST /oidc/start (the "Sign in with …" button) → the provider → GET /oidc/callback →
 * an Argos session (or, when the provider did not assert MFA and the user has Argos TOTP, the code first at
 * /oidc/2fa). Also RP-initiated logout: when oidc.rp_logout is on, signing out of an SSO session continues at
 * the provider's end-session endpoint.
 *
 * Every route answers 404 while SSO is off (the setting, or ARGOS_OIDC_ENABLED=false). A refused sign-in is
 * audited with its reason and shown as one vague message; an unreachable provider is said plainly, next to
 * the password form, which keeps working.
 *
 * Redirect URI to register at the provider: <ARGOS_PORTAL_URL>/oidc/callback; after logout:
 * <ARGOS_PORTAL_URL>/login.
 */
import path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type Router from '@koa/router';
import type Koa from 'koa';
import pug from 'pug';
import { LRUCache } from 'lru-cache';
import { appendAudit, recordEvent } from '@argos/shared/audit';
import { randomToken } from '@argos/shared/crypto';
import { readCookie, serializeCookie } from '@argos/shared/http';
import { checkSecondFactor } from '@argos/shared/second-factor';
import { isSsoMethod, OidcFlow, OidcRefused, OidcUnavailable, ssoEnabled } from '@argos/shared/oidc/flow';
import { readIdentity, resolvePortalUser } from '@argos/shared/oidc/identity';
import { EphemeralStore } from '../identity/ephemeral.ts';
import type { PortalWeb } from './web.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TOTP_VIEW = pug.compileFile(path.join(HERE, 'views', 'oidc-totp.pug'));

const BROWSER_COOKIE = 'argos_oidc';
const CHALLENGE_COOKIE = 'argos_oidc_2fa';
const COOKIE_PATH = '/oidc';

export const SSO_REFUSED = 'Single sign-on did not succeed. Try again, or sign in with your password.';
export const SSO_UNAVAILABLE =
  'Single sign-on is unavailable right now: Argos could not reach the identity provider. You can still sign in with your password.';

interface Attempt {
  rd: string | null;
}

interface StepUp {
  userId: number;
  username: string;
  rd: string | null;
  browser: string;
  tries: number;
  idToken: string | null;
}

const bindingOf = (cookie: string) => createHash('sha256').update(`argos-oidc-browser\0${cookie}`).digest('base64url');

export function oidcRoutes(router: Router, web: PortalWeb): void {
  const { deps } = web;
  const flow = new OidcFlow<Attempt>({ db: deps.db, vault: deps.vault });
  const stepUps = new EphemeralStore<StepUp>({ max: 10_000, ttlMs: 5 * 60_000 });
  /** ID tokens of SSO sessions, for id_token_hint at RP-initiated logout (memory only, bounded). */
  const idTokens = new LRUCache<number, string>({ max: 10_000, ttl: 7 * 86_400_000 });
  const redirectUri = new URL('/oidc/callback', deps.config.portalUrl).toString();
  const settings = () => deps.state.settings;
  const enabled = () => ssoEnabled(deps.config, settings());

  const notFound = (ctx: Koa.Context) => web.message(ctx, 404, 'Not found', 'There is nothing here.', { href: '/', label: 'Portal home' });
  const showLogin = (ctx: Koa.Context, status: number, error: string, rd: string | null = null) =>
    web.render(ctx, 'login', { pageTitle: 'Sign in', rd, error }, status);

  /** The browser's SSO cookie (created when missing, kept when present so two tabs can sign in at once). */
  const browserCookie = (ctx: Koa.Context): string => {
    const existing = readCookie(ctx.get('cookie'), BROWSER_COOKIE);
    if (existing && /^[A-Za-z0-9_-]{32,64}$/.test(existing)) return existing;
    return randomToken(32);
  };

  const refuse = async (ctx: Koa.Context, e: OidcRefused, who: string | null = null) => {
    const client = web.client(ctx);
    deps.log.info({ reason: e.reason, detail: e.detail, ip: client.ip }, 'portal SSO sign-in refused');
    await recordEvent(
      deps.db,
      { name: who ? `user:${who}` : 'anonymous', ...client },
      { action: 'portal.oidc.refused', target: who ?? '', details: { reason: e.reason, detail: e.detail.slice(0, 500) } },
    );
    showLogin(ctx, 403, SSO_REFUSED);
  };

  const unavailable = async (ctx: Koa.Context, e: OidcUnavailable, rd: string | null = null) => {
    const client = web.client(ctx);
    deps.log.warn({ detail: e.detail }, 'portal SSO unavailable');
    await recordEvent(deps.db, { name: 'anonymous', ...client }, { action: 'portal.oidc.unavailable', details: { detail: e.detail.slice(0, 500) } });
    showLogin(ctx, 503, SSO_UNAVAILABLE, rd);
  };

  /** Waits (briefly) until the in-memory state has the user as the database now has them: the next request relies on it. */
  const settle = async (userId: number, groups: string[], email: string | null) => {
    for (let i = 0; i < 80; i++) {
      const u = deps.state.users.get(userId);
      if (u && u.email === email && u.groups.join(',') === [...groups].sort().join(',')) return;
      await deps.state.poll();
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const signIn = async (ctx: Koa.Context, s: { userId: number; factors: number; authMethod: string; rd: string | null; idToken: string | null }) => {
    const client = web.client(ctx);
    const issued = await deps.sessions.issue(
      { userId: s.userId, factors: s.factors, authMethod: s.authMethod, remember: false, ...client },
      'portal.login.success',
    );
    if (s.idToken) idTokens.set(issued.id, s.idToken);
    web.setSessionCookie(ctx, issued.token, null);
    web.continueTo(ctx, s.rd, { userId: s.userId, factors: s.factors, authMethod: s.authMethod, remember: false }, client);
  };

  router.post('/oidc/start', async (ctx) => {
    if (!enabled()) return notFound(ctx);
    const rd = web.rd(web.body(ctx).rd);
    if (!web.csrfOk(ctx)) return showLogin(ctx, 403, 'Your sign-in form expired. Please try again.', rd);
    const cookie = browserCookie(ctx);
    let url: URL;
    try {
      url = await flow.begin(settings(), { redirectUri, browser: bindingOf(cookie), data: { rd } });
    } catch (e) {
      if (e instanceof OidcUnavailable) return unavailable(ctx, e, rd);
      throw e;
    }
    ctx.append('Set-Cookie', serializeCookie(BROWSER_COOKIE, cookie, { secure: web.secure, path: COOKIE_PATH, maxAgeS: 600, sameSite: 'Lax' }));
    ctx.status = 303;
    ctx.redirect(url.toString());
  });

  router.get('/oidc/callback', async (ctx) => {
    if (!enabled()) return notFound(ctx);
    const s = settings();
    const cookie = readCookie(ctx.get('cookie'), BROWSER_COOKIE);
    const callback = new URL(`/oidc/callback${ctx.querystring ? `?${ctx.querystring}` : ''}`, deps.config.portalUrl);
    let who: string | null = null;
    try {
      const done = await flow.finish(callback, cookie ? bindingOf(cookie) : null, s);
      const id = readIdentity(done.issuer, done.claims, s);
      const { user, how } = await resolvePortalUser(deps.db, web.client(ctx), id, s);
      who = user.username;
      await settle(user.id, user.groups, user.email);
      const rd = done.data.rd;
      if (s['oidc.trust_idp_mfa'] && id.mfa) return await signIn(ctx, { userId: user.id, factors: 2, authMethod: 'oidc+idp_mfa', rd, idToken: done.idToken });
      if (user.totpEnabledAt) {
        const browser = web.browserId(ctx);
        if (!browser) throw new OidcRefused('browser_mismatch', 'no browser cookie for the second-factor step');
        const cid = stepUps.put({ userId: user.id, username: user.username, rd, browser, tries: 0, idToken: done.idToken });
        await recordEvent(
          deps.db,
          { name: `user:${user.username}`, ...web.client(ctx) },
          { action: 'portal.oidc.sso_ok', target: user.username, details: { second_factor: 'pending', how } },
        );
        ctx.append('Set-Cookie', serializeCookie(CHALLENGE_COOKIE, cid, { secure: web.secure, path: COOKIE_PATH, maxAgeS: 300, sameSite: 'Lax' }));
        ctx.status = 303;
        return ctx.redirect('/oidc/2fa');
      }
      await signIn(ctx, { userId: user.id, factors: 1, authMethod: 'oidc', rd, idToken: done.idToken });
    } catch (e) {
      if (e instanceof OidcRefused) return refuse(ctx, e, who);
      if (e instanceof OidcUnavailable) return unavailable(ctx, e);
      throw e;
    }
  });

  const pendingStepUp = (ctx: Koa.Context): StepUp | undefined => {
    const c = stepUps.peek(readCookie(ctx.get('cookie'), CHALLENGE_COOKIE));
    return c && c.browser === web.browserId(ctx) ? c : undefined;
  };
  const renderTotp = (ctx: Koa.Context, username: string, error?: string, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = TOTP_VIEW({ title: settings()['portal.title'], csrf: web.csrfToken(ctx), pageTitle: 'Two-factor authentication', username, error });
  };

  router.get('/oidc/2fa', (ctx) => {
    if (!enabled()) return notFound(ctx);
    const c = pendingStepUp(ctx);
    if (!c) return showLogin(ctx, 200, 'Your sign-in expired. Please sign in again.');
    renderTotp(ctx, c.username);
  });

  router.post('/oidc/2fa', async (ctx) => {
    if (!enabled()) return notFound(ctx);
    const id = readCookie(ctx.get('cookie'), CHALLENGE_COOKIE);
    const c = pendingStepUp(ctx);
    if (!c || !id || !web.csrfOk(ctx)) return showLogin(ctx, 403, 'Your sign-in expired. Please sign in again.');
    const client = web.client(ctx);
    const r = await checkSecondFactor(deps, { userId: c.userId, username: c.username, ip: client.ip, code: web.body(ctx).code ?? '', now: deps.state.now(), challenge: c });
    if (r.kind === 'blocked') {
      ctx.set('Retry-After', String(r.retryAfterS));
      return showLogin(ctx, 429, `Too many attempts. Try again in ${Math.ceil(r.retryAfterS / 60)} minute(s).`);
    }
    if (r.kind === 'failed') {
      await deps.db.write((tx) =>
        appendAudit(tx, { name: `user:${c.username}`, ...client }, { action: 'portal.login.2fa_failure', target: c.username, details: { via: r.via, after: 'oidc', ban: !!r.ban } }),
      );
      if (r.exhausted) {
        stepUps.delete(id);
        return showLogin(ctx, 401, 'Too many wrong codes. Please sign in again.');
      }
      return renderTotp(ctx, c.username, 'That code is not valid.', 401);
    }
    const viaRecovery = r.via === 'recovery_code';
    if (!stepUps.take(id)) return showLogin(ctx, 403, 'Your sign-in expired. Please sign in again.');
    const user = deps.state.users.get(c.userId);
    if (!user || user.disabled) return showLogin(ctx, 403, SSO_REFUSED);
    ctx.append('Set-Cookie', serializeCookie(CHALLENGE_COOKIE, '', { secure: web.secure, path: COOKIE_PATH, maxAgeS: 0 }));
    await signIn(ctx, { userId: c.userId, factors: 2, authMethod: viaRecovery ? 'oidc+recovery_code' : 'oidc+totp', rd: c.rd, idToken: c.idToken });
  });

  // Sign-out of an SSO session continues at the provider when the operator asked for it. Registered before the
  // portal's own POST /logout, which ends the Argos session first (next()); only then is the browser sent on.
  router.post('/logout', async (ctx, next) => {
    if (!enabled() || !settings()['oidc.rp_logout']) return next();
    const cur = await web.current(ctx);
    await next();
    if (!cur || !isSsoMethod(cur.session.authMethod) || ctx.status !== 303) return;
    const hint = idTokens.get(cur.session.id) ?? null;
    idTokens.delete(cur.session.id);
    const url = await flow.endSessionUrl(settings(), { idTokenHint: hint, postLogoutRedirectUri: new URL('/login', deps.config.portalUrl).toString() });
    if (!url) return;
    await recordEvent(
      deps.db,
      { name: `user:${cur.user.username}`, ...web.client(ctx) },
      { action: 'portal.oidc.rp_logout', target: cur.user.username, details: { session: cur.session.id } },
    );
    ctx.status = 303;
    ctx.redirect(url.toString());
  });
}
