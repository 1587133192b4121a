/**
 * Portal sign-in routes: password (POST /login), second factor (POST /login/2fa: TOTP code or recovery code),
 * and sign-out. A password-only state is a pending challenge (server-side, short TTL, single use, bound to the
 * browser), never a session; the session is created only when every required factor is done.
 */
import type Router from '@koa/router';
import type Koa from 'koa';
import { authenticatePassword } from '@argos/shared/auth';
import { appendAudit, recordEvent } from '@argos/shared/audit';
import { readCookie, serializeCookie } from '@argos/shared/http';
import { revokeSession } from '@argos/shared/repos/sessions';
import { checkSecondFactor } from '@argos/shared/second-factor';
import { EphemeralStore } from '../identity/ephemeral.ts';
import { SESSION_COOKIE } from '../identity/credentials.ts';
import type { PortalWeb } from './web.ts';

const CHALLENGE_COOKIE = 'argos_2fa';

interface Challenge {
  userId: number;
  username: string;
  remember: boolean;
  rd: string | null;
  browser: string;
  tries: number;
}

export function loginRoutes(router: Router, web: PortalWeb): void {
  const { deps } = web;
  const challenges = new EphemeralStore<Challenge>({ max: 10_000, ttlMs: 5 * 60_000 });

  const showLogin = (ctx: Koa.Context, status: number, locals: { rd?: string | null; error?: string; username?: string }) =>
    web.render(ctx, 'login', { pageTitle: 'Sign in', ...locals }, status);

  router.get('/login', async (ctx) => {
    const rd = web.rd(ctx.query.rd);
    const cur = await web.current(ctx);
    // Already signed in as well as this account can be: continue without asking again.
    if (cur && (cur.session.factors >= 2 || !cur.user.hasTotp)) {
      return web.continueTo(ctx, rd, { userId: cur.user.id, factors: cur.session.factors, authMethod: cur.session.authMethod, remember: cur.session.remember }, web.client(ctx));
    }
    showLogin(ctx, 200, { rd });
  });

  router.post('/login', async (ctx) => {
    const b = web.body(ctx);
    const rd = web.rd(b.rd);
    const username = b.username?.slice(0, 128) ?? '';
    if (!web.csrfOk(ctx)) return showLogin(ctx, 403, { rd, username, error: 'Your sign-in form expired. Please try again.' });
    const client = web.client(ctx);
    const r = await authenticatePassword({ db: deps.db, regulator: deps.regulator, log: deps.log, realm: 'portal' }, { username, password: b.password ?? '', ...client });
    if (r.kind === 'blocked') {
      ctx.set('Retry-After', String(r.retryAfterS));
      return showLogin(ctx, 429, { rd, username, error: `Too many failed sign-ins. Try again in ${Math.ceil(r.retryAfterS / 60)} minute(s).` });
    }
    if (r.kind === 'failed') return showLogin(ctx, 401, { rd, username, error: 'Invalid username or password.' });
    const remember = b.remember === '1';
    if (r.user.totpEnabledAt) {
      const browser = web.browserId(ctx);
      if (!browser) return showLogin(ctx, 403, { rd, username, error: 'Your sign-in form expired. Please try again.' });
      const id = challenges.put({ userId: r.user.id, username: r.user.username, remember, rd, browser, tries: 0 });
      await recordEvent(deps.db, { name: `user:${r.user.username}`, ...client }, { action: 'portal.login.password_ok', target: r.user.username, details: { second_factor: 'pending' } });
      ctx.append('Set-Cookie', serializeCookie(CHALLENGE_COOKIE, id, { secure: web.secure, path: '/login', maxAgeS: 300 }));
      ctx.status = 303;
      return ctx.redirect('/login/2fa');
    }
    const s = await deps.sessions.issue({ userId: r.user.id, factors: 1, authMethod: 'password', remember, ...client }, 'portal.login.success');
    web.setSessionCookie(ctx, s.token, remember ? s.lifetimeS : null);
    web.continueTo(ctx, rd, { userId: r.user.id, factors: 1, authMethod: 'password', remember }, client);
  });

  const pending = (ctx: Koa.Context): Challenge | undefined => {
    const c = challenges.peek(readCookie(ctx.get('cookie'), CHALLENGE_COOKIE));
    return c && c.browser === web.browserId(ctx) ? c : undefined;
  };

  router.get('/login/2fa', (ctx) => {
    const c = pending(ctx);
    if (!c) return showLogin(ctx, 200, { error: 'Your sign-in expired. Please sign in again.' });
    web.render(ctx, 'totp', { pageTitle: 'Two-factor authentication', username: c.username });
  });

  router.post('/login/2fa', async (ctx) => {
    const id = readCookie(ctx.get('cookie'), CHALLENGE_COOKIE);
    const c = pending(ctx);
    if (!c || !id || !web.csrfOk(ctx)) return showLogin(ctx, 403, { error: 'Your sign-in expired. Please sign in again.' });
    const client = web.client(ctx);
    const r = await checkSecondFactor(deps, { userId: c.userId, username: c.username, ip: client.ip, code: web.body(ctx).code ?? '', now: deps.state.now(), challenge: c });
    if (r.kind === 'blocked') {
      ctx.set('Retry-After', String(r.retryAfterS));
      return showLogin(ctx, 429, { error: `Too many attempts. Try again in ${Math.ceil(r.retryAfterS / 60)} minute(s).` });
    }
    if (r.kind === 'failed') {
      await deps.db.write((tx) => appendAudit(tx, { name: `user:${c.username}`, ...client }, { action: 'portal.login.2fa_failure', target: c.username, details: { via: r.via, ban: !!r.ban } }));
      if (r.exhausted) {
        challenges.delete(id);
        return showLogin(ctx, 401, { error: 'Too many wrong codes. Please sign in again.' });
      }
      return web.render(ctx, 'totp', { pageTitle: 'Two-factor authentication', username: c.username, error: 'That code is not valid.' }, 401);
    }
    const viaRecovery = r.via === 'recovery_code';
    if (!challenges.take(id)) return showLogin(ctx, 403, { error: 'Your sign-in expired. Please sign in again.' });
    const method = viaRecovery ? 'password+recovery_code' : 'password+totp';
    const s = await deps.sessions.issue({ userId: c.userId, factors: 2, authMethod: method, remember: c.remember, ...client }, 'portal.login.success');
    ctx.append('Set-Cookie', serializeCookie(CHALLENGE_COOKIE, '', { secure: web.secure, path: '/login', maxAgeS: 0 }));
    web.setSessionCookie(ctx, s.token, c.remember ? s.lifetimeS : null);
    web.continueTo(ctx, c.rd, { userId: c.userId, factors: 2, authMethod: method, remember: c.remember }, client);
  });

  router.post('/logout', async (ctx) => {
    if (!web.csrfOk(ctx)) return web.message(ctx, 403, 'Sign out failed', 'The form expired. Go back and try again.', { href: '/', label: 'Back' });
    const token = readCookie(ctx.get('cookie'), SESSION_COOKIE);
    const cur = await web.current(ctx);
    if (token) deps.state.forgetSession(token);
    if (cur) {
      await deps.db.write(async (tx) => {
        if (cur.session.id > 0) await revokeSession(tx, cur.session.id);
        await appendAudit(tx, { name: `user:${cur.user.username}`, ...web.client(ctx) }, { action: 'portal.logout', target: cur.user.username, details: { session: cur.session.id } });
      });
    }
    web.clearSessionCookie(ctx);
    ctx.status = 303;
    ctx.redirect(web.rd(web.body(ctx).rd) ?? new URL('/login', deps.config.portalUrl).toString());
  });

  router.get('/logout', async (ctx) => {
    const cur = await web.current(ctx);
    web.render(ctx, 'home', { pageTitle: 'Sign out', user: cur?.user ?? null });
  });
}
