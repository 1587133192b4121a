/**
 * JSON API under /api/v1: the same commands as the pages, session-authenticated (X-CSRF-Token header on
 * writes). Errors are `{ error, fields? }` with 400/401/403/404/409; a Caddy refusal is 502.
 */
import Router from '@koa/router';
import { listAudit } from '@argos/shared/audit';
import { CommandError, addHost, editHost, removeHost } from '@argos/shared/commands/hosts';
import { addUser, editUser, presentUser, removeUser, setPassword } from '@argos/shared/commands/users';
import { changeSetting } from '@argos/shared/commands/settings';
import { normalizeHost } from '@argos/shared/hostname';
import { getHost, listHosts } from '@argos/shared/repos/hosts';
import { getUser, listUsers } from '@argos/shared/repos/users';
import { formatSetting, isSettingKey, loadSettings } from '@argos/shared/settings';
import { startSession } from '../auth.ts';
import { assertNotSelfLockout } from '../policies.ts';
import { presentAudit, presentHost, presentSettings } from '../presenters.ts';
import { auditApiQuery, hostFieldsFromJson, newUserFromJson, passwordFromJson, settingValueFromJson, userUpdateFromJson } from '../schemas.ts';
import type { Ctx, PanelState, Web } from '../web.ts';

/** The JSON body of a write; anything but application/json is refused. */
function json(ctx: Ctx): unknown {
  if (!ctx.is('application/json')) throw new CommandError('send a JSON body with Content-Type: application/json', 415);
  return ctx.request.body;
}

export function apiRoutes(web: Web): Router<PanelState> {
  const { db } = web.deps;
  const r = new Router<PanelState>({ prefix: '/api/v1' });

  const findHost = async (raw: string) => {
    const host = await getHost(db, normalizeHost(raw) ?? raw);
    if (!host) throw new CommandError(`no host ${raw}`, 404);
    return host;
  };
  const findUser = async (raw: string) => {
    const user = await getUser(db, raw);
    if (!user) throw new CommandError(`no user ${raw}`, 404);
    return user;
  };

  /** Who is signed in, and the CSRF token for this session's writes. */
  r.get('/session', (ctx) => {
    ctx.body = { user: presentUser(ctx.state.user!), csrfToken: ctx.state.csrfToken };
  });

  // Hosts: every change is pushed to Caddy; the outcome is in `caddy`.
  r.get('/hosts', async (ctx) => {
    ctx.body = { hosts: (await listHosts(db)).map(presentHost) };
  });
  r.post('/hosts', async (ctx) => {
    const host = await addHost(db, web.actor(ctx), hostFieldsFromJson(json(ctx)));
    const caddy = await web.applyCaddy(web.actor(ctx));
    ctx.status = 201;
    ctx.body = { host: presentHost(host), caddy };
  });
  r.get('/hosts/:domain', async (ctx) => {
    ctx.body = { host: presentHost(await findHost(ctx.params.domain!)) };
  });
  r.put('/hosts/:domain', async (ctx) => {
    const host = await editHost(db, web.actor(ctx), ctx.params.domain!, hostFieldsFromJson(json(ctx)));
    ctx.body = { host: presentHost(host), caddy: await web.applyCaddy(web.actor(ctx)) };
  });
  r.delete('/hosts/:domain', async (ctx) => {
    const host = await findHost(ctx.params.domain!);
    await removeHost(db, web.actor(ctx), host.domain);
    ctx.body = { deleted: host.domain, caddy: await web.applyCaddy(web.actor(ctx)) };
  });

  r.get('/users', async (ctx) => {
    ctx.body = { users: (await listUsers(db)).map(presentUser) };
  });
  r.post('/users', async (ctx) => {
    const user = await addUser(db, web.actor(ctx), newUserFromJson(json(ctx)));
    ctx.status = 201;
    ctx.body = { user: presentUser(user) };
  });
  r.get('/users/:username', async (ctx) => {
    ctx.body = { user: presentUser(await findUser(ctx.params.username!)) };
  });
  r.put('/users/:username', async (ctx) => {
    const current = await findUser(ctx.params.username!);
    const fields = userUpdateFromJson(json(ctx), current.username);
    assertNotSelfLockout(ctx.state.user!, current.username, fields);
    ctx.body = { user: presentUser(await editUser(db, web.actor(ctx), current.username, fields)) };
  });
  r.post('/users/:username/password', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    const { password, mustChange } = passwordFromJson(json(ctx));
    await setPassword(db, web.actor(ctx), user.username, password, mustChange);
    // The operator's own sessions just ended: renew this one so the client keeps working.
    if (user.id === ctx.state.user!.id) await startSession(web, ctx, { ...user, mustChangePassword: mustChange }, 'password_change');
    ctx.body = { ok: true, csrfToken: ctx.state.csrfToken };
  });
  r.delete('/users/:username', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    assertNotSelfLockout(ctx.state.user!, user.username, { delete: true });
    await removeUser(db, web.actor(ctx), user.username);
    ctx.body = { deleted: user.username };
  });

  r.get('/audit', async (ctx) => {
    ctx.body = { entries: (await listAudit(db, auditApiQuery(ctx.query))).map(presentAudit) };
  });

  r.get('/settings', async (ctx) => {
    ctx.body = { settings: presentSettings(await loadSettings(db)) };
  });
  r.put('/settings/:key', async (ctx) => {
    const key = ctx.params.key!;
    if (!isSettingKey(key)) throw new CommandError(`unknown setting "${key}"`, 404);
    const value = await changeSetting(db, web.actor(ctx), key, settingValueFromJson(json(ctx)));
    ctx.body = { key, value: formatSetting(key, value) };
  });

  r.post('/caddy/apply', async (ctx) => {
    const result = await web.applyCaddy(web.actor(ctx));
    ctx.status = result.ok ? 200 : 502;
    ctx.body = result.ok ? { ok: true } : { ok: false, error: result.error };
  });
  r.get('/caddy/status', async (ctx) => {
    ctx.body = await web.caddyStatus();
  });
  r.get('/caddy/preview', async (ctx) => {
    ctx.body = await web.deps.caddy.preview();
  });

  return r;
}
