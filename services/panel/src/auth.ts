/**
 * Operator authentication for the panel: the session middleware, the gates every protected request
 * passes (signed in, CSRF, forced password change), sign-in and sign-out, and the operator's own password.
 *
 * Panel sessions are server-side rows of kind 'panel' in a host-only `argos_panel` cookie, separate from
 * visitor sessions. Only enabled admins get one; a session whose user lost admin rights stops working.
 */
import Router from '@koa/router';
import type Koa from 'koa';
import { authenticatePassword } from '@argos/shared/auth';
import { appendAudit, recordEvent } from '@argos/shared/audit';
import { hashToken } from '@argos/shared/crypto';
import { getTokenByHash, touchToken, TOKEN_RE } from '@argos/shared/repos/tokens';
import { EphemeralStore } from '@argos/shared/ephemeral';
import { LRUCache } from 'lru-cache';
import QRCode from 'qrcode';
import { confirmTotpEnrollment } from '@argos/shared/commands/identity';
import { newTotpSecret, otpauthUri } from '@argos/shared/totp';
import { checkSecondFactor } from '@argos/shared/second-factor';

import { CommandError, type FieldErrors } from '@argos/shared/commands/hosts';
import { setPassword } from '@argos/shared/commands/users';
import { readCookie } from '@argos/shared/http';
import { passwordProblem } from '@argos/shared/password';
import { createSession, getSessionByToken, markReauth, revokeSession, sessionAlive, touchSession, type Session } from '@argos/shared/repos/sessions';
import { getUserById, recordLogin, type User } from '@argos/shared/repos/users';
import { loadSettings } from '@argos/shared/settings';
import { BROWSER_CSRF_COOKIE, SESSION_COOKIE, body, isApi, safeNext, str, type Ctx, type PanelState, type Web } from './web.ts';
import { panelSessionAllowed, ssoButtonLabel } from './sso.ts';

/** last_seen_at is written at most this often per session (idle timeouts are minutes, not seconds). */
const TOUCH_EVERY_MS = 15_000;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{32,128}$/;
const CHALLENGE_COOKIE = 'argos_panel_2fa';

type Middleware = Koa.Middleware<PanelState>;

/** The live panel session and its admin behind a cookie token, or null. */
async function operatorSession(web: Web, token: string): Promise<{ session: Session; user: User } | null> {
  if (!TOKEN_SHAPE.test(token)) return null;
  const { db } = web.deps;
  const now = web.now();
  const session = await getSessionByToken(db, token);
  if (!session || session.kind !== 'panel' || !session.csrfSecret || !sessionAlive(session, now)) return null;
  const user = await getUserById(db, session.userId);
  if (!user || !user.isAdmin || user.disabled) return null;
  if (!(await panelSessionAllowed(web, session))) return null; // an SSO session stops when SSO is off
  if (now - session.lastSeenAt >= TOUCH_EVERY_MS) await db.write((tx) => touchSession(tx, session.id, now));
  return { session, user };
}

/**
 * An admin API token (`Authorization: Bearer argos_…`, created with admin scope) for the JSON API only.
 * A wrong token counts against the client like a failed sign-in.
 */
async function tokenOperator(web: Web, ctx: Ctx): Promise<User | null> {
  const m = /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization'));
  if (!m || !isApi(ctx)) return null;
  const { db, regulator } = web.deps;
  const ip = web.clientIp(ctx);
  if (regulator.blockedFor(ip) > 0) throw new CommandError('too many failed attempts', 429);
  const now = web.now();
  const t = TOKEN_RE.test(m[1]!) ? await getTokenByHash(db, hashToken(m[1]!)) : null;
  const user = t && t.adminScope && !t.revokedAt && (t.expiresAt === null || t.expiresAt > now) ? await getUserById(db, t.userId) : null;
  if (!t || !user || !user.isAdmin || user.disabled) {
    regulator.fail(ip);
    await recordEvent(db, { name: 'anonymous', ip, userAgent: web.client(ctx).userAgent }, { action: 'panel.token.failure', target: t ? String(t.id) : '' });
    return null;
  }
  if (!t.lastUsedAt || now - t.lastUsedAt > 60_000) await db.write((tx) => touchToken(tx, t.id, now));
  return user;
}

/** Loads the operator's session from the cookie (and drops a dead cookie), or an admin API token. */
export function loadSession(web: Web): Middleware {
  return async (ctx, next) => {
    if (ctx.get('authorization')) {
      const user = await tokenOperator(web, ctx);
      if (user) {
        ctx.state.user = user;
        ctx.state.viaToken = true;
      }
      return next();
    }
    const token = readCookie(ctx.get('cookie'), SESSION_COOKIE);
    if (token) {
      const found = await operatorSession(web, token);
      if (found) {
        ctx.state.session = found.session;
        ctx.state.user = found.user;
        ctx.state.csrfToken = web.csrf.token(found.session.csrfSecret!);
      } else {
        web.clearCookie(ctx, SESSION_COOKIE);
      }
    }
    await next();
  };
}

/** Unauthenticated: 401 JSON for the API (never a redirect), 302 to /login?next=… for pages. */
export function requireOperator(web: Web): Middleware {
  return async (ctx, next) => {
    if (ctx.state.user) return next();
    if (isApi(ctx)) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer realm="Argos panel"');
      ctx.body = { error: 'authentication required' };
      return;
    }
    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      const next = safeNext(ctx.originalUrl);
      ctx.redirect(next === '/' ? '/login' : `/login?next=${encodeURIComponent(next)}`);
      return;
    }
    web.seeOther(ctx, '/login');
  };
}

/**
 * Every state-changing request carries the session's CSRF token (form field `_csrf` or header
 * `X-CSRF-Token`). Cross-site requests are refused whatever they carry. Requests authenticated by an admin
 * API token carry no ambient credential (no cookie), so they need no CSRF token.
 */
export function csrfGuard(web: Web): Middleware {
  return async (ctx, next) => {
    if (SAFE_METHODS.has(ctx.method) || ctx.state.viaToken) return next();
    const field = body(ctx)._csrf;
    const token = typeof field === 'string' && field ? field : ctx.get('x-csrf-token');
    const crossSite = ctx.get('sec-fetch-site') === 'cross-site';
    if (crossSite || !web.csrf.verify(ctx.state.session?.csrfSecret, token)) {
      web.deps.log.warn({ path: ctx.path, method: ctx.method, ip: web.clientIp(ctx), crossSite, user: ctx.state.user?.username }, 'panel CSRF check failed');
      throw new CommandError(
        isApi(ctx)
          ? 'CSRF token missing or invalid (send the X-CSRF-Token header)'
          : 'This form expired or did not come from the panel. Go back, reload the page and try again.',
        403,
      );
    }
    return next();
  };
}

/** How long a sign-in or re-authentication covers sensitive actions. */
export const REAUTH_WINDOW_MS = 5 * 60_000;
/**
 * Sensitive actions need a recent re-authentication (password, plus TOTP when enrolled): secrets, restore,
 * key rotation, removing someone's second factor. Other route files add their paths here.
 */
export const SENSITIVE: RegExp[] = [/^\/secrets(\/|$)/, /^\/api\/v1\/secrets(\/|$)/, /^\/(api\/v1\/)?backups\/.*restore/, /^\/(api\/v1\/)?system\/rotate/, /^\/users\/[^/]+\/totp\/reset$/, /^\/notifications\/(smtp|webhook)$/, /^\/users\/[^/]+\/(tokens|password)$/, /^\/api\/v1\/users\/[^/]+\/password$/];

/** Sends an operator whose last authentication is older than the window to /reauth (403 for the API). */
export function reauthGate(web: Web): Middleware {
  return async (ctx, next) => {
    // Koa's router matches case-insensitively and tolerates a trailing slash: so does this gate.
    const path = ctx.path.toLowerCase().replace(/\/+$/, '') || '/';
    if (ctx.state.viaToken || !SENSITIVE.some((re) => re.test(path))) return next();
    const at = ctx.state.session?.reauthAt ?? 0;
    if (web.now() - at <= REAUTH_WINDOW_MS) return next();
    if (isApi(ctx)) throw new CommandError('re-authentication required: confirm your password at /reauth (or use an admin API token)', 403);
    const back = ctx.method === 'GET' ? ctx.originalUrl : safeNext(new URL(ctx.get('referer') || '/', 'http://x').pathname);
    web.seeOther(ctx, `/reauth?next=${encodeURIComponent(safeNext(back))}`);
  };
}

const PASSWORD_CHANGE_PATHS = new Set(['/account/password', '/logout']);
const ENROLL_PATHS = new Set(['/account/totp', '/account/password', '/logout']);

/**
 * An operator with a one-time password reaches nothing but the password form (and sign-out); when the panel
 * requires 2FA (`panel.require_2fa`), an admin without TOTP reaches nothing but enrollment.
 */
export function passwordChangeGate(web: Web): Middleware {
  return async (ctx, next) => {
    const user = ctx.state.user;
    if (!user || ctx.state.viaToken) return next();
    let to: string | null = null;
    if (user.mustChangePassword && !PASSWORD_CHANGE_PATHS.has(ctx.path)) to = '/account/password';
    else if (!user.totpEnabledAt && !ENROLL_PATHS.has(ctx.path) && (await loadSettings(web.deps.db))['panel.require_2fa']) to = '/account/totp';
    if (!to) return next();
    if (isApi(ctx)) throw new CommandError(to === '/account/password' ? 'password change required: set a new password in the panel at /account/password' : 'two-factor enrollment required: enroll at /account/totp', 403);
    if (ctx.method === 'GET' || ctx.method === 'HEAD') ctx.redirect(to);
    else web.seeOther(ctx, to);
  };
}

/**
 * Creates a panel session for an admin (and ends the request's previous one), audited in the same
 * transaction, and sets the cookie. `reason` says whether this is a sign-in or a renewal after a
 * password change (which ended every session).
 */
export async function startSession(web: Web, ctx: Ctx, user: User, reason: 'login' | 'password_change', factors = ctx.state.session?.factors ?? 1): Promise<void> {
  const { db } = web.deps;
  const settings = await loadSettings(db);
  const client = web.client(ctx);
  const now = web.now();
  const previous = ctx.state.session;
  const created = await db.write(async (tx) => {
    const c = await createSession(
      tx,
      {
        kind: 'panel',
        userId: user.id,
        factors,
        authMethod: factors > 1 ? 'password+totp' : 'password',
        remember: false,
        lifetimeS: settings['panel.session_lifetime'],
        idleTimeoutS: settings['panel.idle_timeout'],
        ...client,
      },
      now,
    );
    if (previous && previous.revokedAt === null) await revokeSession(tx, previous.id, now);
    if (reason === 'login') await recordLogin(tx, user.id, now);
    await appendAudit(
      tx,
      { name: `admin:${user.username}`, ...client },
      {
        action: reason === 'login' ? 'panel.login.success' : 'panel.session.renew',
        target: user.username,
        details: { session: c.id, method: 'password', reason },
      },
      now,
    );
    return c;
  });
  web.setCookie(ctx, SESSION_COOKIE, created.token);
  ctx.state.csrfToken = web.csrf.token(created.csrfSecret);
}

/** GET/POST /login: public. */
export function loginRoutes(web: Web): Router<PanelState> {
  const { db, regulator, log } = web.deps;
  const r = new Router<PanelState>();
  const challenges = new EphemeralStore<{ userId: number; next: string; browser: string; tries: number }>({ max: 1000, ttlMs: 5 * 60_000 });

  const showLogin = async (ctx: Ctx, status: number, locals: { next: string; username?: string; error?: string }) => {
    web.render(ctx, 'login', { pageTitle: 'Sign in', csrf: web.csrf.token(web.browserCsrfSecret(ctx)), sso: await ssoButtonLabel(web), ...locals }, status);
  };

  r.get('/login', (ctx) => {
    const next = safeNext(ctx.query.next);
    if (ctx.state.user) return web.seeOther(ctx, next);
    return showLogin(ctx, 200, { next });
  });

  r.post('/login', async (ctx) => {
    const b = body(ctx);
    const next = safeNext(b.next);
    const username = str(b.username).slice(0, 128);
    if (!web.csrf.verify(readCookie(ctx.get('cookie'), BROWSER_CSRF_COOKIE), b._csrf) || ctx.get('sec-fetch-site') === 'cross-site') {
      return showLogin(ctx, 403, { next, username, error: 'The sign-in form expired. Please try again.' });
    }
    const result = await authenticatePassword({ db, regulator, log, realm: 'panel' }, { username, password: str(b.password), ...web.client(ctx) }, (u) =>
      u.isAdmin ? null : 'not_admin',
    );
    if (result.kind === 'blocked') {
      ctx.set('Retry-After', String(result.retryAfterS));
      return showLogin(ctx, 429, {
        next,
        username,
        error: `Too many failed sign-ins from your address. Try again in ${Math.ceil(result.retryAfterS / 60)} minute(s).`,
      });
    }
    if (result.kind === 'failed') return showLogin(ctx, 401, { next, username, error: 'Invalid username or password.' });
    if (result.user.totpEnabledAt) {
      // Password alone is a pending challenge, never a session.
      const id = challenges.put({ userId: result.user.id, next, browser: readCookie(ctx.get('cookie'), BROWSER_CSRF_COOKIE) ?? '', tries: 0 });
      web.setCookie(ctx, CHALLENGE_COOKIE, id, 300);
      return web.seeOther(ctx, '/login/2fa');
    }
    await startSession(web, ctx, result.user, 'login', 1);
    web.seeOther(ctx, result.user.mustChangePassword ? '/account/password' : next);
  });

  const pending = (ctx: Ctx) => {
    const c = challenges.peek(readCookie(ctx.get('cookie'), CHALLENGE_COOKIE));
    return c && c.browser && c.browser === readCookie(ctx.get('cookie'), BROWSER_CSRF_COOKIE) ? c : undefined;
  };
  const show2fa = (ctx: Ctx, status: number, error?: string) =>
    web.render(ctx, 'login-2fa', { pageTitle: 'Two-factor authentication', csrf: web.csrf.token(web.browserCsrfSecret(ctx)), error }, status);

  r.get('/login/2fa', (ctx) => (pending(ctx) ? show2fa(ctx, 200) : showLogin(ctx, 200, { next: '/', error: 'Your sign-in expired. Please sign in again.' })));

  r.post('/login/2fa', async (ctx) => {
    const id = readCookie(ctx.get('cookie'), CHALLENGE_COOKIE);
    const c = pending(ctx);
    const b = body(ctx);
    if (!c || !id || !web.csrf.verify(readCookie(ctx.get('cookie'), BROWSER_CSRF_COOKIE), b._csrf)) {
      return showLogin(ctx, 403, { next: '/', error: 'Your sign-in expired. Please sign in again.' });
    }
    const user = await getUserById(db, c.userId);
    const client = web.client(ctx);
    if (!user || !user.isAdmin || user.disabled) return showLogin(ctx, 403, { next: '/', error: 'Your sign-in expired. Please sign in again.' });
    const r = await checkSecondFactor({ db, vault: web.deps.vault, regulator }, { userId: user.id, username: user.username, ip: client.ip, code: str(b.code), now: web.now(), challenge: c });
    if (r.kind === 'blocked') {
      ctx.set('Retry-After', String(r.retryAfterS));
      return showLogin(ctx, 429, { next: '/', error: `Too many attempts. Try again in ${Math.ceil(r.retryAfterS / 60)} minute(s).` });
    }
    if (r.kind === 'failed') {
      await recordEvent(db, { name: `admin:${user.username}`, ...client }, { action: 'panel.login.2fa_failure', target: user.username, details: { via: r.via } });
      if (r.exhausted) {
        challenges.delete(id);
        return showLogin(ctx, 401, { next: '/', error: 'Too many wrong codes. Please sign in again.' });
      }
      return show2fa(ctx, 401, 'That code is not valid.');
    }
    if (!challenges.take(id)) return showLogin(ctx, 403, { next: '/', error: 'Your sign-in expired. Please sign in again.' });
    web.clearCookie(ctx, CHALLENGE_COOKIE);
    await startSession(web, ctx, user, 'login', 2);
    web.seeOther(ctx, user.mustChangePassword ? '/account/password' : c.next);
  });

  return r;
}

/** POST /logout and the operator's own password form (protected: behind the gates). */
export function accountRoutes(web: Web): Router<PanelState> {
  const { db, regulator, log } = web.deps;
  const r = new Router<PanelState>();
  const enrollments = new LRUCache<number, string>({ max: 1000, ttl: 10 * 60_000 });

  r.post('/logout', async (ctx) => {
    const session = ctx.state.session!;
    const user = ctx.state.user!;
    const actor = web.actor(ctx);
    await db.write(async (tx) => {
      await revokeSession(tx, session.id, web.now());
      await appendAudit(tx, actor, { action: 'panel.logout', target: user.username, details: { session: session.id } }, web.now());
    });
    web.clearCookie(ctx, SESSION_COOKIE);
    web.flash(ctx, 'ok', 'You are signed out.');
    web.seeOther(ctx, '/login');
  });

  const showForm = (ctx: Ctx, status: number, errors: FieldErrors = {}, error?: string) => {
    web.render(
      ctx,
      'account-password',
      { pageTitle: 'Change your password', section: 'account', forced: ctx.state.user!.mustChangePassword, errors, error },
      status,
    );
  };

  r.get('/account/password', (ctx) => showForm(ctx, 200));

  // Re-authentication before sensitive actions: password (regulated like a sign-in) plus a TOTP code when enrolled.
  const showReauth = (ctx: Ctx, status: number, next: string, error?: string) =>
    web.render(ctx, 'reauth', { pageTitle: 'Confirm it is you', section: 'account', next, needsCode: !!ctx.state.user!.totpEnabledAt, error }, status);
  r.get('/reauth', (ctx) => showReauth(ctx, 200, safeNext(ctx.query.next)));
  r.post('/reauth', async (ctx) => {
    const user = ctx.state.user!;
    const b = body(ctx);
    const next = safeNext(b.next);
    const check = await authenticatePassword({ db, regulator, log, realm: 'panel' }, { username: user.username, password: str(b.password), ...web.client(ctx) }, (u) =>
      u.id === user.id && u.isAdmin ? null : 'not_admin',
    );
    if (check.kind === 'blocked') {
      ctx.set('Retry-After', String(check.retryAfterS));
      return showReauth(ctx, 429, next, `Too many failed attempts. Try again in ${Math.ceil(check.retryAfterS / 60)} minute(s).`);
    }
    if (check.kind === 'failed') return showReauth(ctx, 401, next, 'That is not your password.');
    if (user.totpEnabledAt) {
      const r = await checkSecondFactor({ db, vault: web.deps.vault, regulator }, { userId: user.id, username: user.username, ip: web.clientIp(ctx), code: str(b.code), now: web.now() });
      if (r.kind === 'blocked') {
        ctx.set('Retry-After', String(r.retryAfterS));
        return showReauth(ctx, 429, next, `Too many attempts. Try again in ${Math.ceil(r.retryAfterS / 60)} minute(s).`);
      }
      if (r.kind === 'failed') return showReauth(ctx, 401, next, 'That code is not valid.');
    }
    await db.write(async (tx) => {
      await markReauth(tx, ctx.state.session!.id, web.now());
      await appendAudit(tx, web.actor(ctx), { action: 'panel.reauth', target: user.username });
    });
    web.seeOther(ctx, next);
  });

  // The operator's own TOTP: a fresh seed per visit, kept server-side until a code confirms it.
  const showTotp = async (ctx: Ctx, status: number, locals: Record<string, unknown>) => {
    const settings = await loadSettings(db);
    web.render(ctx, 'account-totp', { pageTitle: 'Two-factor authentication', section: 'account', required: settings['panel.require_2fa'], username: ctx.state.user!.username, ...locals }, status);
  };
  r.get('/account/totp', async (ctx) => {
    const user = ctx.state.user!;
    if (user.totpEnabledAt) return showTotp(ctx, 200, { enrolled: true });
    // Reloading the page keeps the key already shown (the operator may have scanned it).
    const secret = enrollments.get(ctx.state.session!.id) ?? newTotpSecret();
    enrollments.set(ctx.state.session!.id, secret);
    const uri = otpauthUri(secret, user.username, 'Argos panel');
    await showTotp(ctx, 200, { secret, qr: await QRCode.toDataURL(uri, { margin: 1, width: 220 }) });
  });
  r.post('/account/totp', async (ctx) => {
    const user = ctx.state.user!;
    const session = ctx.state.session!;
    const secret = enrollments.get(session.id);
    if (!secret) return web.seeOther(ctx, '/account/totp');
    try {
      const codes = await confirmTotpEnrollment(db, web.deps.vault, web.actor(ctx), user.id, secret, str(body(ctx).code), web.now());
      enrollments.delete(session.id);
      // A new session after the second factor (no fixation of the one-factor session).
      await startSession(web, ctx, { ...user, totpEnabledAt: web.now() }, 'login', 2);
      await showTotp(ctx, 200, { codes });
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      const uri = otpauthUri(secret, user.username, 'Argos panel');
      await showTotp(ctx, 400, { secret, qr: await QRCode.toDataURL(uri, { margin: 1, width: 220 }), error: e.errors.code ?? e.message });
    }
  });

  r.post('/account/password', async (ctx) => {
    const user = ctx.state.user!;
    const b = body(ctx);
    const current = str(b.current_password);
    const password = str(b.password);
    const errors: FieldErrors = {};
    if (!current) errors.current_password = 'Enter your current password.';
    const problem = passwordProblem(password);
    if (problem) errors.password = problem;
    else if (password === current) errors.password = 'Choose a password different from the current one.';
    if (!errors.password && password !== str(b.password_confirm)) errors.password_confirm = 'The two new passwords differ.';
    if (Object.keys(errors).length) return showForm(ctx, 400, errors);

    // Re-checking the current password goes through login regulation, so a stolen session cannot guess it.
    const check = await authenticatePassword({ db, regulator, log, realm: 'panel' }, { username: user.username, password: current, ...web.client(ctx) }, (u) =>
      u.id === user.id && u.isAdmin ? null : 'not_admin',
    );
    if (check.kind === 'blocked') {
      ctx.set('Retry-After', String(check.retryAfterS));
      return showForm(ctx, 429, {}, `Too many failed attempts. Try again in ${Math.ceil(check.retryAfterS / 60)} minute(s).`);
    }
    if (check.kind === 'failed') return showForm(ctx, 400, { current_password: 'Your current password is not correct.' });

    // setPassword ends every session of the user, this one included: open a fresh one for this browser.
    await setPassword(db, web.actor(ctx), user.username, password, false);
    await startSession(web, ctx, { ...user, mustChangePassword: false }, 'password_change');
    web.flash(ctx, 'ok', 'Password changed. Your other sessions were signed out.');
    web.seeOther(ctx, user.mustChangePassword ? '/welcome' : '/');
  });

  return r;
}
