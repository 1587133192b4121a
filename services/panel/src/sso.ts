/**
 * Panel single sign-on, for Argos users the operator marked admin and linked to their SSO identity (a group
 * claim never grants admin; nothing is provisioned or linked by e-mail here). Public routes, registered right
 * after the password login:
 *   POST /login/oidc/start → the provider → GET /login/oidc/callback → (Argos TOTP when the admin has it,
 *   always: the panel does not take the provider's word for MFA) → a panel session.
 * The same callback completes "Link my account" from Settings → Single sign-on (a signed-in admin proves who
 * they are at the provider; see routes/oidc.ts).
 *
 * The panel's own cookies are SameSite=Strict, which a browser does not send on the redirect back from the
 * provider; the flow's cookies are Lax (path /login/oidc), and the end of the flow is a small page that moves
 * on by itself (meta refresh) so the next request is a same-site one that carries the new Strict session cookie.
 *
 * Redirect URI to register: <panel origin>/login/oidc/callback, where the panel origin is
 * https://<ARGOS_PANEL_DOMAIN> behind Caddy, or the address the operator opens the panel with in lan mode.
 * After logout: <panel origin>/login.
 */
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';
import pug from 'pug';
import { LRUCache } from 'lru-cache';
import { appendAudit, recordEvent } from '@argos/shared/audit';
import { randomToken } from '@argos/shared/crypto';
import { readCookie, serializeCookie } from '@argos/shared/http';
import { normalizeHost } from '@argos/shared/hostname';
import { createSession, type Session } from '@argos/shared/repos/sessions';
import { getUserById, recordLogin, type User } from '@argos/shared/repos/users';
import { loadSettings, type SettingsMap } from '@argos/shared/settings';
import { checkSecondFactor } from '@argos/shared/second-factor';
import { isSsoMethod, ssoConfigured, ssoEnabled } from '@argos/shared/oidc/mode';
import { OidcFlow, OidcRefused, OidcUnavailable } from '@argos/shared/oidc/flow';
import { linkAdmin, readIdentity, resolvePanelAdmin } from '@argos/shared/oidc/identity';
import { EphemeralStore } from '@argos/shared/ephemeral';
import { BROWSER_CSRF_COOKIE, SESSION_COOKIE, body, fmt, safeNext, str, type Ctx, type PanelState, type Web } from './web.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const view = (name: string) => pug.compileFile(path.join(HERE, 'views', `${name}.pug`));
const VIEWS = { login: view('login'), totp: view('sso-totp'), go: view('sso-continue') };
const SETTINGS_JS = fs.readFileSync(path.join(HERE, 'static', 'oidc-settings.js'));

const FLOW_COOKIE = 'argos_panel_oidc';
const CHALLENGE_COOKIE = 'argos_panel_oidc_2fa';
const FLOW_PATH = '/login/oidc';

export const SSO_REFUSED = 'Single sign-on did not succeed. Try again, or sign in with your password.';
export const SSO_UNAVAILABLE =
  'Single sign-on is unavailable right now: Argos could not reach the identity provider. You can still sign in with your password.';

type Attempt = { purpose: 'login'; next: string } | { purpose: 'link'; userId: number; sessionId: number };

interface StepUp {
  userId: number;
  username: string;
  next: string;
  idToken: string | null;
  browser: string;
  tries: number;
}

interface PanelSso {
  flow: OidcFlow<Attempt>;
  stepUps: EphemeralStore<StepUp>;
  idTokens: LRUCache<number, string>;
}

const instances = new WeakMap<Web, PanelSso>();

/** The SSO state of one panel app (shared by the public flow routes and the settings page). */
export function panelSso(web: Web): PanelSso {
  let s = instances.get(web);
  if (!s) {
    s = {
      flow: new OidcFlow<Attempt>({ db: web.deps.db, vault: web.deps.vault }),
      stepUps: new EphemeralStore<StepUp>({ max: 1_000, ttlMs: 5 * 60_000 }),
      idTokens: new LRUCache<number, string>({ max: 1_000, ttl: 30 * 86_400_000 }),
    };
    instances.set(web, s);
  }
  return s;
}

/** Whether a panel session may still be used: one created through SSO stops working when SSO is off. */
export async function panelSessionAllowed(web: Web, session: Session): Promise<boolean> {
  return !isSsoMethod(session.authMethod) || ssoEnabled(web.deps.config, await loadSettings(web.deps.db));
}

/** The label of the panel's SSO button, or null when SSO is off or not configured. */
export async function ssoButtonLabel(web: Web): Promise<string | null> {
  const s = await loadSettings(web.deps.db);
  return ssoConfigured(web.deps.config, s) ? s['oidc.button_label'] || 'Sign in with single sign-on' : null;
}

/** The panel's public origin: https://<ARGOS_PANEL_DOMAIN> behind Caddy, else the address the browser used. */
export function panelOrigin(web: Web, ctx: Ctx): string {
  const { config } = web.deps;
  if (config.mode === 'behind_caddy' && config.panelDomain) return `https://${normalizeHost(config.panelDomain) ?? config.panelDomain}`;
  const host = ctx.get('host').toLowerCase();
  if (host && normalizeHost(host)) return `http://${host}`;
  const { host: h, port } = config.panelListen;
  return `http://${h === '0.0.0.0' ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h}:${port}`;
}

export const panelRedirectUri = (web: Web, ctx: Ctx) => `${panelOrigin(web, ctx)}${FLOW_PATH}/callback`;

/** Starts an attempt (sets the flow cookie) and returns the provider URL to send the browser to; throws OidcUnavailable. */
export async function beginPanelSso(web: Web, ctx: Ctx, settings: SettingsMap, attempt: Attempt): Promise<URL> {
  const { flow } = panelSso(web);
  const existing = readCookie(ctx.get('cookie'), FLOW_COOKIE);
  const cookie = existing && /^[A-Za-z0-9_-]{32,64}$/.test(existing) ? existing : randomToken(32);
  const url = await flow.begin(settings, { redirectUri: panelRedirectUri(web, ctx), browser: bindingOf(web, cookie), data: attempt });
  ctx.append('Set-Cookie', serializeCookie(FLOW_COOKIE, cookie, { secure: web.secureCookies, path: FLOW_PATH, maxAgeS: 600, sameSite: 'Lax' }));
  return url;
}

const bindingOf = (web: Web, cookie: string) => web.csrf.token(`panel-oidc-browser:${cookie}`);

/** A page that moves on by itself: the next request is same-site, so the Strict session cookie goes with it. */
function continueTo(ctx: Ctx, to: string): void {
  ctx.status = 200;
  ctx.type = 'html';
  ctx.body = VIEWS.go({ to: safeNext(to) });
}

/** Public SSO routes of the panel (registered after the password login, before the operator gate). */
export function ssoRoutes(web: Web): Router<PanelState> {
  const { db, vault, regulator, log, config } = web.deps;
  const sso = panelSso(web);
  const r = new Router<PanelState>();
  const settings = () => loadSettings(db);

  r.get('/static/oidc-settings.js', (ctx) => {
    ctx.type = 'application/javascript';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = SETTINGS_JS;
  });

  const notFound = (ctx: Ctx) =>
    web.render(ctx, 'message', { pageTitle: 'Not found', heading: 'Not found', text: 'There is nothing here.', link: { href: '/', label: 'Dashboard' } }, 404);

  const showLogin = async (ctx: Ctx, status: number, error: string, next = '/') => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = VIEWS.login({
      appTitle: 'Argos',
      section: '',
      me: null,
      lanMode: config.mode === 'lan',
      flash: null,
      errors: {},
      fmt,
      pageTitle: 'Sign in',
      csrf: web.csrf.token(web.browserCsrfSecret(ctx)),
      next,
      error,
      sso: await ssoButtonLabel(web),
    });
  };

  const refuse = async (ctx: Ctx, e: OidcRefused, who: string | null = null) => {
    const client = web.client(ctx);
    log.info({ reason: e.reason, detail: e.detail, ip: client.ip }, 'panel SSO sign-in refused');
    await recordEvent(
      db,
      { name: who ? `user:${who}` : 'anonymous', ...client },
      { action: 'panel.oidc.refused', target: who ?? '', details: { reason: e.reason, detail: e.detail.slice(0, 500) } },
    );
    await showLogin(ctx, 403, SSO_REFUSED);
  };

  const unavailable = async (ctx: Ctx, e: OidcUnavailable, next = '/') => {
    log.warn({ detail: e.detail }, 'panel SSO unavailable');
    await recordEvent(db, { name: 'anonymous', ...web.client(ctx) }, { action: 'panel.oidc.unavailable', details: { detail: e.detail.slice(0, 500) } });
    await showLogin(ctx, 503, SSO_UNAVAILABLE, next);
  };

  const startSession = async (ctx: Ctx, user: User, factors: number, authMethod: string, idToken: string | null) => {
    const s = await settings();
    const client = web.client(ctx);
    const now = web.now();
    const created = await db.write(async (tx) => {
      const c = await createSession(
        tx,
        {
          kind: 'panel',
          userId: user.id,
          factors,
          authMethod,
          remember: false,
          lifetimeS: s['panel.session_lifetime'],
          idleTimeoutS: s['panel.idle_timeout'],
          ...client,
        },
        now,
      );
      await recordLogin(tx, user.id, now);
      await appendAudit(
        tx,
        { name: `admin:${user.username}`, ...client },
        { action: 'panel.login.success', target: user.username, details: { session: c.id, method: authMethod, factors } },
        now,
      );
      return c;
    });
    if (idToken) sso.idTokens.set(created.id, idToken);
    web.setCookie(ctx, SESSION_COOKIE, created.token);
  };

  r.post(`${FLOW_PATH}/start`, async (ctx) => {
    const s = await settings();
    if (!ssoEnabled(config, s)) return notFound(ctx);
    const b = body(ctx);
    const next = safeNext(b.next);
    if (!web.csrf.verify(readCookie(ctx.get('cookie'), BROWSER_CSRF_COOKIE), b._csrf) || ctx.get('sec-fetch-site') === 'cross-site') {
      return showLogin(ctx, 403, 'The sign-in form expired. Please try again.', next);
    }
    try {
      const url = await beginPanelSso(web, ctx, s, { purpose: 'login', next });
      web.seeOther(ctx, url.toString());
    } catch (e) {
      if (e instanceof OidcUnavailable) return unavailable(ctx, e, next);
      throw e;
    }
  });

  r.get(`${FLOW_PATH}/callback`, async (ctx) => {
    const s = await settings();
    if (!ssoEnabled(config, s)) return notFound(ctx);
    const cookie = readCookie(ctx.get('cookie'), FLOW_COOKIE);
    const callback = new URL(`${FLOW_PATH}/callback${ctx.querystring ? `?${ctx.querystring}` : ''}`, panelOrigin(web, ctx));
    let who: string | null = null;
    try {
      const done = await sso.flow.finish(callback, cookie ? bindingOf(web, cookie) : null, s);
      const id = readIdentity(done.issuer, done.claims, s);
      const attempt = done.data;
      if (attempt.purpose === 'link') {
        const owner = await getUserById(db, attempt.userId);
        who = owner?.username ?? null;
        const live = await db.get<{ revoked_at: number | null; expires_at: number }>('SELECT revoked_at, expires_at FROM sessions WHERE id = ? AND kind = ?', [
          attempt.sessionId,
          'panel',
        ]);
        if (!owner || !live || live.revoked_at !== null || live.expires_at <= web.now())
          throw new OidcRefused('link_session_ended', 'the panel session that asked for the link has ended');
        await linkAdmin(db, { name: `admin:${owner.username}`, ...web.client(ctx) }, owner.id, id);
        return continueTo(ctx, '/settings/oidc?done=linked');
      }
      const user = await resolvePanelAdmin(db, id, s);
      who = user.username;
      if (user.totpEnabledAt) {
        const browser = cookie ? bindingOf(web, cookie) : '';
        const cid = sso.stepUps.put({ userId: user.id, username: user.username, next: attempt.next, idToken: done.idToken, browser, tries: 0 });
        await recordEvent(
          db,
          { name: `user:${user.username}`, ...web.client(ctx) },
          { action: 'panel.oidc.sso_ok', target: user.username, details: { second_factor: 'pending' } },
        );
        ctx.append('Set-Cookie', serializeCookie(CHALLENGE_COOKIE, cid, { secure: web.secureCookies, path: FLOW_PATH, maxAgeS: 300, sameSite: 'Lax' }));
        return renderTotp(ctx, cid, user.username);
      }
      // Without TOTP: one factor; when panel.require_2fa is on, the operator gate sends them to enrollment next.
      await startSession(ctx, user, 1, 'oidc', done.idToken);
      continueTo(ctx, user.mustChangePassword ? '/account/password' : attempt.next);
    } catch (e) {
      if (e instanceof OidcRefused) return refuse(ctx, e, who);
      if (e instanceof OidcUnavailable) return unavailable(ctx, e);
      throw e;
    }
  });

  const renderTotp = (ctx: Ctx, cid: string, username: string, error?: string, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = VIEWS.totp({
      appTitle: 'Argos',
      section: '',
      me: null,
      lanMode: config.mode === 'lan',
      flash: null,
      errors: {},
      fmt,
      pageTitle: 'Two-factor authentication',
      csrf: web.csrf.token(`panel-oidc-2fa:${cid}`),
      username,
      error,
    });
  };

  r.post(`${FLOW_PATH}/2fa`, async (ctx) => {
    const s = await settings();
    if (!ssoEnabled(config, s)) return notFound(ctx);
    const cid = readCookie(ctx.get('cookie'), CHALLENGE_COOKIE);
    const flowCookie = readCookie(ctx.get('cookie'), FLOW_COOKIE);
    const c = sso.stepUps.peek(cid);
    const b = body(ctx);
    if (!c || !cid || !flowCookie || c.browser !== bindingOf(web, flowCookie) || !web.csrf.verify(`panel-oidc-2fa:${cid}`, b._csrf)) {
      return showLogin(ctx, 403, 'Your sign-in expired. Please sign in again.');
    }
    const client = web.client(ctx);
    const r = await checkSecondFactor({ db, vault, regulator }, { userId: c.userId, username: c.username, ip: client.ip, code: str(b.code), now: web.now(), challenge: c });
    if (r.kind === 'blocked') {
      ctx.set('Retry-After', String(r.retryAfterS));
      return showLogin(ctx, 429, `Too many attempts. Try again in ${Math.ceil(r.retryAfterS / 60)} minute(s).`);
    }
    if (r.kind === 'failed') {
      await recordEvent(db, { name: `user:${c.username}`, ...client }, { action: 'panel.login.2fa_failure', target: c.username, details: { via: r.via, after: 'oidc' } });
      if (r.exhausted) {
        sso.stepUps.delete(cid);
        return showLogin(ctx, 401, 'Too many wrong codes. Please sign in again.');
      }
      return renderTotp(ctx, cid, c.username, 'That code is not valid.', 401);
    }
    const viaRecovery = r.via === 'recovery_code';
    if (!sso.stepUps.take(cid)) return showLogin(ctx, 403, 'Your sign-in expired. Please sign in again.');
    const user = await getUserById(db, c.userId);
    if (!user || !user.isAdmin || user.disabled) return refuse(ctx, new OidcRefused('not_admin', 'no longer an enabled admin'), c.username);
    ctx.append('Set-Cookie', serializeCookie(CHALLENGE_COOKIE, '', { secure: web.secureCookies, path: FLOW_PATH, maxAgeS: 0, sameSite: 'Lax' }));
    await startSession(ctx, user, 2, viaRecovery ? 'oidc+recovery_code' : 'oidc+totp', c.idToken);
    web.seeOther(ctx, user.mustChangePassword ? '/account/password' : c.next);
  });

  // Sign-out of an SSO session continues at the provider when oidc.rp_logout is on. The panel's own POST
  // /logout (behind the operator gate and CSRF check) runs first, through next().
  r.post('/logout', async (ctx, next) => {
    const session = ctx.state.session;
    const user = ctx.state.user;
    await next();
    if (!session || !user || !isSsoMethod(session.authMethod) || ctx.status !== 303) return;
    const s = await settings();
    if (!ssoEnabled(config, s) || !s['oidc.rp_logout']) return;
    const hint = sso.idTokens.get(session.id) ?? null;
    sso.idTokens.delete(session.id);
    const url = await sso.flow.endSessionUrl(s, { idTokenHint: hint, postLogoutRedirectUri: `${panelOrigin(web, ctx)}/login` });
    if (!url) return;
    await recordEvent(db, web.actor(ctx), { action: 'panel.oidc.rp_logout', target: user.username, details: { session: session.id } });
    web.seeOther(ctx, url.toString());
  });

  return r;
}
