/**
 * The visitor's account page: their sessions (revoke one, or log out everywhere), two-factor authentication
 * (enroll with a QR code confirmed by a code; disable or regenerate recovery codes only with password + a
 * current code), and personal API tokens (shown once). Every change is audited as the user's own.
 */
import type Router from '@koa/router';
import type Koa from 'koa';
import QRCode from 'qrcode';
import { recordEvent, mutate } from '@argos/shared/audit';
import { readCookie, serializeCookie } from '@argos/shared/http';
import { listUserSessions, revokeSession, revokeUserSessions } from '@argos/shared/repos/sessions';
import { getUserById } from '@argos/shared/repos/users';
import { listUserTokens } from '@argos/shared/repos/tokens';
import { verifyPassword } from '@argos/shared/password';
import { consumeRecoveryCode, consumeTotp, newTotpSecret, otpauthUri, remainingRecoveryCodes, looksLikeRecoveryCode } from '@argos/shared/totp';
import { confirmTotpEnrollment, issueApiToken, regenerateRecoveryCodes, resetTotp, revokeToken } from '@argos/shared/commands/identity';
import { CommandError } from '@argos/shared/commands/errors';
import { splitList } from '@argos/shared/settings';
import { isSsoMethod } from '@argos/shared/oidc/mode';
import { EphemeralStore } from '../identity/ephemeral.ts';
import type { PortalWeb } from './web.ts';

const ENROLL_COOKIE = 'argos_enroll';

export function accountRoutes(router: Router, web: PortalWeb): void {
  const { deps } = web;
  const enrollments = new EphemeralStore<{ sessionId: number; userId: number; secret: string }>({ max: 5_000, ttlMs: 10 * 60_000 });

  /** Requires a signed-in visitor; otherwise sends them to sign in and come back. */
  const signedIn = async (ctx: Koa.Context) => {
    const cur = await web.current(ctx);
    if (!cur) {
      ctx.status = 303;
      ctx.redirect(`/login?rd=${encodeURIComponent(new URL(ctx.path, deps.config.portalUrl).toString())}`);
      return null;
    }
    return cur;
  };
  const actor = (ctx: Koa.Context, username: string) => ({ name: `user:${username}`, ...web.client(ctx) });

  /** Password plus a current TOTP code (or a recovery code): required before changing factors. */
  const reauth = async (userId: number, password: string, code: string) => {
    const u = await getUserById(deps.db, userId);
    if (!u || !(await verifyPassword(u.passwordHash, password))) return false;
    if (!u.totpEnabledAt) return true;
    return looksLikeRecoveryCode(code) && !/^\d{6}$/.test(code.trim())
      ? consumeRecoveryCode(deps.db, userId, code, deps.state.now())
      : consumeTotp(deps.db, deps.vault, userId, code.trim(), deps.state.now());
  };

  const showAccount = async (ctx: Koa.Context, cur: NonNullable<Awaited<ReturnType<typeof signedIn>>>, extra: Record<string, unknown> = {}, status = 200) => {
    const sessions = (await listUserSessions(deps.db, cur.user.id)).filter((s) => s.kind === 'portal');
    const tokens = (await listUserTokens(deps.db, cur.user.id)).filter((t) => !t.revokedAt && !t.adminScope);
    web.render(ctx, 'account', {
      pageTitle: 'Your account',
      user: cur.user,
      current: cur.session.id,
      sessions,
      tokens,
      codesLeft: cur.user.hasTotp ? await remainingRecoveryCodes(deps.db, cur.user.id) : 0,
      fmt: (ms: number | null) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : '—'),
      ...extra,
    }, status);
  };

  router.get('/account', async (ctx) => {
    const cur = await signedIn(ctx);
    if (cur) await showAccount(ctx, cur);
  });

  router.post('/account/sessions/:id/revoke', async (ctx) => {
    const cur = await signedIn(ctx);
    if (!cur) return;
    if (!web.csrfOk(ctx)) return web.message(ctx, 403, 'Form expired', 'Go back and try again.', { href: '/account', label: 'Back' });
    const id = Number(ctx.params.id);
    const mine = (await listUserSessions(deps.db, cur.user.id)).find((s) => s.id === id);
    if (mine) {
      await mutate(deps.db, actor(ctx, cur.user.username), async (tx) => {
        await revokeSession(tx, id);
        return { result: undefined, audit: { action: 'portal.session.revoke', target: cur.user.username, details: { session: id } } };
      });
    }
    ctx.status = 303;
    ctx.redirect('/account');
  });

  router.post('/account/logout-everywhere', async (ctx) => {
    const cur = await signedIn(ctx);
    if (!cur) return;
    if (!web.csrfOk(ctx)) return web.message(ctx, 403, 'Form expired', 'Go back and try again.', { href: '/account', label: 'Back' });
    await mutate(deps.db, actor(ctx, cur.user.username), async (tx) => {
      const n = await revokeUserSessions(tx, cur.user.id, deps.state.now(), 'portal');
      return { result: undefined, audit: { action: 'portal.logout.everywhere', target: cur.user.username, details: { sessions_ended: n } } };
    });
    deps.state.forgetSession(cur.token);
    web.clearSessionCookie(ctx);
    ctx.status = 303;
    ctx.redirect('/login');
  });

  // --- TOTP enrollment: the seed counts only once a code for it is confirmed.
  const showEnroll = async (ctx: Koa.Context, username: string, secret: string, rd: string | null, error?: string, status = 200) => {
    const uri = otpauthUri(secret, username, deps.state.settings['portal.title']);
    const qr = await QRCode.toDataURL(uri, { margin: 1, width: 220 });
    web.render(ctx, 'enroll', { pageTitle: 'Set up two-factor authentication', secret, uri, qr, rd, error }, status);
  };

  router.get('/account/totp', async (ctx) => {
    const cur = await signedIn(ctx);
    if (!cur) return;
    const rd = web.rd(ctx.query.rd);
    if (cur.user.hasTotp) return web.message(ctx, 200, 'Two-factor authentication is on', 'Your account already uses an authenticator app.', { href: '/account', label: 'Your account' });
    if (!deps.state.settings['totp.self_enroll']) return web.message(ctx, 403, 'Two-factor setup is managed by the operator', 'Ask the operator to set up two-factor authentication for your account.');
    // Reloading keeps the key already shown (the visitor may have scanned it).
    const existing = enrollments.peek(readCookie(ctx.get('cookie'), ENROLL_COOKIE));
    if (existing && existing.sessionId === cur.session.id && existing.userId === cur.user.id) return showEnroll(ctx, cur.user.username, existing.secret, rd);
    const secret = newTotpSecret();
    const id = enrollments.put({ sessionId: cur.session.id, userId: cur.user.id, secret });
    ctx.append('Set-Cookie', serializeCookie(ENROLL_COOKIE, id, { secure: web.secure, path: '/account', maxAgeS: 600 }));
    await showEnroll(ctx, cur.user.username, secret, rd);
  });

  router.post('/account/totp', async (ctx) => {
    const cur = await signedIn(ctx);
    if (!cur) return;
    const b = web.body(ctx);
    const rd = web.rd(b.rd);
    const id = readCookie(ctx.get('cookie'), ENROLL_COOKIE);
    const e = enrollments.peek(id);
    if (!web.csrfOk(ctx) || !e || e.userId !== cur.user.id || e.sessionId !== cur.session.id) {
      return web.message(ctx, 403, 'Setup expired', 'Start the setup again.', { href: '/account/totp', label: 'Set up two-factor authentication' });
    }
    let codes: string[];
    try {
      codes = await confirmTotpEnrollment(deps.db, deps.vault, actor(ctx, cur.user.username), cur.user.id, e.secret, b.code ?? '', deps.state.now());
    } catch (err) {
      if (err instanceof CommandError) return showEnroll(ctx, cur.user.username, e.secret, rd, err.errors.code ?? err.message, 400);
      throw err;
    }
    enrollments.take(id);
    // A new session token after the second factor: the one-factor session ends here.
    await mutate(deps.db, actor(ctx, cur.user.username), async (tx) => {
      if (cur.session.id > 0) await revokeSession(tx, cur.session.id);
      return { result: undefined, audit: { action: 'portal.session.upgrade', target: cur.user.username, details: { from: cur.session.id } } };
    });
    deps.state.forgetSession(cur.token);
    const client = web.client(ctx);
    const s = await deps.sessions.issue({ userId: cur.user.id, factors: 2, authMethod: 'password+totp', remember: cur.session.remember, ...client }, 'portal.login.success');
    web.setSessionCookie(ctx, s.token, cur.session.remember ? s.lifetimeS : null);
    web.render(ctx, 'codes', { pageTitle: 'Save your recovery codes', codes, next: rd ?? '/account' });
  });

  router.post('/account/totp/disable', async (ctx) => {
    const cur = await signedIn(ctx);
    if (!cur) return;
    const b = web.body(ctx);
    if (!web.csrfOk(ctx)) return web.message(ctx, 403, 'Form expired', 'Go back and try again.', { href: '/account', label: 'Back' });
    if (!(await reauth(cur.user.id, b.password ?? '', b.code ?? ''))) {
      deps.regulator.fail(web.client(ctx).ip, cur.user.username);
      await recordEvent(deps.db, actor(ctx, cur.user.username), { action: 'portal.reauth.failure', target: cur.user.username, details: { for: 'totp.disable' } });
      return showAccount(ctx, cur, { error: 'Password or code is wrong: two-factor authentication is still on.' }, 401);
    }
    await resetTotp(deps.db, actor(ctx, cur.user.username), cur.user.username);
    web.clearSessionCookie(ctx);
    web.message(ctx, 200, 'Two-factor authentication is off', 'All your sessions were ended. Sign in again.', { href: '/login', label: 'Sign in' });
  });

  router.post('/account/recovery-codes', async (ctx) => {
    const cur = await signedIn(ctx);
    if (!cur) return;
    const b = web.body(ctx);
    if (!web.csrfOk(ctx)) return web.message(ctx, 403, 'Form expired', 'Go back and try again.', { href: '/account', label: 'Back' });
    if (!(await reauth(cur.user.id, b.password ?? '', b.code ?? ''))) {
      deps.regulator.fail(web.client(ctx).ip, cur.user.username);
      return showAccount(ctx, cur, { error: 'Password or code is wrong: your recovery codes were not changed.' }, 401);
    }
    const codes = await regenerateRecoveryCodes(deps.db, actor(ctx, cur.user.username), cur.user.username);
    web.render(ctx, 'codes', { pageTitle: 'Save your recovery codes', codes, next: '/account' });
  });

  router.post('/account/tokens', async (ctx) => {
    const cur = await signedIn(ctx);
    if (!cur) return;
    const b = web.body(ctx);
    if (!web.csrfOk(ctx)) return web.message(ctx, 403, 'Form expired', 'Go back and try again.', { href: '/account', label: 'Back' });
    try {
      const days = b.expires_days?.trim() ? Number(b.expires_days) : 90;
      const t = await issueApiToken(deps.db, actor(ctx, cur.user.username), cur.user.username, {
        name: b.name ?? '',
        hosts: splitList(b.hosts ?? ''),
        expiresInDays: days,
        // A token stands for the sign-in that made it: never more factors, and SSO-made tokens die with the break glass.
        factors: cur.session.factors,
        origin: isSsoMethod(cur.session.authMethod) ? 'sso' : 'portal',
      });
      web.render(ctx, 'token', { pageTitle: 'Your new API token', token: t.token, name: b.name });
    } catch (err) {
      if (err instanceof CommandError) return showAccount(ctx, cur, { error: err.message }, 400);
      throw err;
    }
  });

  router.post('/account/tokens/:id/revoke', async (ctx) => {
    const cur = await signedIn(ctx);
    if (!cur) return;
    if (!web.csrfOk(ctx)) return web.message(ctx, 403, 'Form expired', 'Go back and try again.', { href: '/account', label: 'Back' });
    try {
      await revokeToken(deps.db, actor(ctx, cur.user.username), Number(ctx.params.id), cur.user.id);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
    }
    ctx.status = 303;
    ctx.redirect('/account');
  });
}
