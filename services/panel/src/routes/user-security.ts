/**
 * A user's security page in the panel: their live sessions (revoke one or all), two-factor state (reset TOTP,
 * issue recovery codes), and API tokens (create — including admin-scope tokens for this JSON API — and revoke).
 * Codes and tokens are shown once.
 */
import Router from '@koa/router';
import { mutate } from '@argos/shared/audit';
import { CommandError } from '@argos/shared/commands/errors';
import { issueApiToken, regenerateRecoveryCodes, resetTotp, revokeToken } from '@argos/shared/commands/identity';
import { getUser, type User } from '@argos/shared/repos/users';
import { listUserSessions, revokeSession, revokeUserSessions } from '@argos/shared/repos/sessions';
import { listUserTokens } from '@argos/shared/repos/tokens';
import { remainingRecoveryCodes } from '@argos/shared/totp';
import { splitList } from '@argos/shared/settings';
import { body, commandFailure, str, type Ctx, type PanelState, type Web } from '../web.ts';
import { userPath } from './users.ts';

export function userSecurityRoutes(web: Web): Router<PanelState> {
  const { db } = web.deps;
  const r = new Router<PanelState>();

  const findUser = async (raw: string): Promise<User> => {
    const user = await getUser(db, raw);
    if (!user) throw new CommandError(`There is no user ${raw}.`, 404);
    return user;
  };
  const securityPath = (u: string) => `${userPath(u)}/security`;

  const show = async (ctx: Ctx, user: User, extra: Record<string, unknown> = {}, status = 200) => {
    web.render(
      ctx,
      'user-security',
      {
        pageTitle: `${user.username}: sessions, 2FA, tokens`,
        section: 'users',
        user,
        back: userPath(user.username),
        action: securityPath(user.username),
        sessions: await listUserSessions(db, user.id),
        tokens: (await listUserTokens(db, user.id)).filter((t) => !t.revokedAt),
        codesLeft: user.totpEnabledAt ? await remainingRecoveryCodes(db, user.id) : 0,
        currentSession: ctx.state.session?.id,
        ...extra,
      },
      status,
    );
  };

  r.get('/users/:username/security', async (ctx) => show(ctx, await findUser(ctx.params.username!)));

  r.post('/users/:username/sessions/:id/revoke', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    const id = Number(ctx.params.id);
    const s = (await listUserSessions(db, user.id)).find((x) => x.id === id);
    if (!s) throw new CommandError('That session is not active.', 404);
    await mutate(db, web.actor(ctx), async (tx) => {
      await revokeSession(tx, id);
      return { result: undefined, audit: { action: 'user.session.revoke', target: user.username, details: { session: id, kind: s.kind } } };
    });
    web.flash(ctx, 'ok', 'Session revoked: it stops working within two seconds.');
    web.seeOther(ctx, securityPath(user.username));
  });

  r.post('/users/:username/sessions/revoke-all', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    const self = user.id === ctx.state.user!.id;
    const n = await mutate(db, web.actor(ctx), async (tx) => {
      const ended = await revokeUserSessions(tx, user.id, web.now(), self ? 'portal' : undefined);
      return { result: ended, audit: { action: 'user.session.revoke_all', target: user.username, details: { sessions_ended: ended } } };
    });
    web.flash(ctx, 'ok', `${n} session(s) ended${self ? ' (your panel session was kept)' : ''}.`);
    web.seeOther(ctx, securityPath(user.username));
  });

  r.post('/users/:username/totp/reset', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    await resetTotp(db, web.actor(ctx), user.username);
    web.flash(ctx, 'ok', `Two-factor authentication of ${user.username} was removed and their sessions ended.`);
    web.seeOther(ctx, user.id === ctx.state.user!.id ? '/login' : securityPath(user.username));
  });

  r.post('/users/:username/recovery-codes', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    const codes = await regenerateRecoveryCodes(db, web.actor(ctx), user.username);
    await show(ctx, (await findUser(user.username))!, { codes });
  });

  r.post('/users/:username/tokens', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    const b = body(ctx);
    try {
      const days = str(b.expires_days).trim() ? Number(str(b.expires_days)) : 90;
      const t = await issueApiToken(db, web.actor(ctx), user.username, { name: str(b.name), hosts: splitList(str(b.hosts)), expiresInDays: days, adminScope: str(b.admin_scope) === '1' });
      await show(ctx, user, { newToken: t.token });
    } catch (e) {
      const f = commandFailure(e);
      if (!f) throw e;
      await show(ctx, user, { error: f.message }, f.status);
    }
  });

  r.post('/users/:username/tokens/:id/revoke', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    await revokeToken(db, web.actor(ctx), Number(ctx.params.id), user.id);
    web.flash(ctx, 'ok', 'Token revoked.');
    web.seeOther(ctx, securityPath(user.username));
  });

  return r;
}
