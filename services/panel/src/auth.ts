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
import { appendAudit } from '@argos/shared/audit';
import { CommandError, type FieldErrors } from '@argos/shared/commands/hosts';
import { setPassword } from '@argos/shared/commands/users';
import { readCookie } from '@argos/shared/http';
import { passwordProblem } from '@argos/shared/password';
import { createSession, getSessionByToken, revokeSession, sessionAlive, touchSession, type Session } from '@argos/shared/repos/sessions';
import { getUserById, recordLogin, type User } from '@argos/shared/repos/users';
import { loadSettings } from '@argos/shared/settings';
import { BROWSER_CSRF_COOKIE, SESSION_COOKIE, body, isApi, safeNext, str, type Ctx, type PanelState, type Web } from './web.ts';

/** last_seen_at is written at most this often per session (idle timeouts are minutes, not seconds). */
const TOUCH_EVERY_MS = 15_000;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{32,128}$/;

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
  if (now - session.lastSeenAt >= TOUCH_EVERY_MS) await db.write((tx) => touchSession(tx, session.id, now));
  return { session, user };
}

/** Loads the operator's session from the cookie (and drops a dead cookie). */
export function loadSession(web: Web): Middleware {
  return async (ctx, next) => {
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
 * `X-CSRF-Token`). Cross-site requests are refused whatever they carry.
 * TODO(api tokens): a valid admin `Authorization: Bearer` token will be exempt once tokens exist.
 */
export function csrfGuard(web: Web): Middleware {
  return async (ctx, next) => {
    if (SAFE_METHODS.has(ctx.method)) return next();
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

const PASSWORD_CHANGE_PATHS = new Set(['/account/password', '/logout']);

/** An operator with a one-time password reaches nothing but the password form (and sign-out). */
export function passwordChangeGate(web: Web): Middleware {
  return async (ctx, next) => {
    if (!ctx.state.user?.mustChangePassword || PASSWORD_CHANGE_PATHS.has(ctx.path)) return next();
    if (isApi(ctx)) throw new CommandError('password change required: set a new password in the panel at /account/password', 403);
    if (ctx.method === 'GET' || ctx.method === 'HEAD') ctx.redirect('/account/password');
    else web.seeOther(ctx, '/account/password');
  };
}

/**
 * Creates a panel session for an admin (and ends the request's previous one), audited in the same
 * transaction, and sets the cookie. `reason` says whether this is a sign-in or a renewal after a
 * password change (which ended every session).
 */
export async function startSession(web: Web, ctx: Ctx, user: User, reason: 'login' | 'password_change'): Promise<void> {
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
        factors: 1,
        authMethod: 'password',
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

  const showLogin = (ctx: Ctx, status: number, locals: { next: string; username?: string; error?: string }) => {
    web.render(ctx, 'login', { pageTitle: 'Sign in', csrf: web.csrf.token(web.browserCsrfSecret(ctx)), ...locals }, status);
  };

  r.get('/login', (ctx) => {
    const next = safeNext(ctx.query.next);
    if (ctx.state.user) return web.seeOther(ctx, next);
    showLogin(ctx, 200, { next });
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
    await startSession(web, ctx, result.user, 'login');
    web.seeOther(ctx, result.user.mustChangePassword ? '/account/password' : next);
  });

  return r;
}

/** POST /logout and the operator's own password form (protected: behind the gates). */
export function accountRoutes(web: Web): Router<PanelState> {
  const { db, regulator, log } = web.deps;
  const r = new Router<PanelState>();

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
    web.seeOther(ctx, '/');
  });

  return r;
}
