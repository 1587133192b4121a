/**
 * Write-only secrets (behind the re-authentication gate): the page and the API show set/unset and the last
 * change, never a value. A blank value keeps the current one.
 *
 * Pages: GET /secrets, POST /secrets/:name (value), POST /secrets/:name/clear
 * API:   GET /api/v1/secrets, PUT /api/v1/secrets/:name {"value": "..."}, DELETE /api/v1/secrets/:name
 */
import Router from '@koa/router';
import { CommandError } from '@argos/shared/commands/errors';
import { clearSecret, storeSecret } from '@argos/shared/commands/settings';
import { isSecretName, secretStatus, type SecretName } from '@argos/shared/secrets';
import { body, str, type Ctx, type PanelState, type Web } from '../web.ts';

const HELP: Record<SecretName, string> = {
  'oidc.client_secret': 'Client secret of the OIDC application registered at your identity provider (single sign-on).',
  'smtp.password': 'Password of the SMTP relay used for notifications.',
  'crowdsec.bouncer_key': 'CrowdSec bouncer API key the gatekeeper uses to pull decisions (ARGOS_CROWDSEC_KEY wins when set).',
  'crowdsec.machine_password': 'CrowdSec machine password Argos uses to push its own login bans.',
  'webhook.token': 'Bearer token sent with notification webhooks.',
};
const help = (name: string) => (Object.hasOwn(HELP, name) ? HELP[name as SecretName] : '');

export function secretRoutes(web: Web): Router<PanelState> {
  const { db, vault } = web.deps;
  const r = new Router<PanelState>();

  const nameOf = (raw: string): SecretName => {
    if (!isSecretName(raw)) throw new CommandError(`there is no secret named ${raw.slice(0, 80)}`, 404);
    return raw;
  };

  const show = async (ctx: Ctx, status = 200, failed: { name?: string; error?: string } = {}) => {
    const secrets = (await secretStatus(db)).map((s) => ({ ...s, help: help(s.name), error: s.name === failed.name ? failed.error : null }));
    web.render(ctx, 'secrets', { pageTitle: 'Secrets', section: 'secrets', secrets }, status);
  };

  r.get('/secrets', (ctx) => show(ctx));

  r.post('/secrets/:name', async (ctx) => {
    const name = nameOf(ctx.params.name!);
    const value = str(body(ctx).value);
    if (!value) {
      web.flash(ctx, 'ok', `${name} left unchanged.`);
      return web.seeOther(ctx, `/secrets#${name}`);
    }
    try {
      await storeSecret(db, vault, web.actor(ctx), name, value);
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      return show(ctx, e.status, { name, error: e.message });
    }
    web.flash(ctx, 'ok', `${name} saved (encrypted; it is never shown again).`);
    web.seeOther(ctx, `/secrets#${name}`);
  });

  r.post('/secrets/:name/clear', async (ctx) => {
    const name = nameOf(ctx.params.name!);
    await clearSecret(db, web.actor(ctx), name);
    web.flash(ctx, 'ok', `${name} cleared.`);
    web.seeOther(ctx, `/secrets#${name}`);
  });

  r.get('/api/v1/secrets', async (ctx) => {
    ctx.body = { secrets: await secretStatus(db) };
  });

  r.put('/api/v1/secrets/:name', async (ctx) => {
    const name = nameOf(ctx.params.name!);
    if (!ctx.is('application/json')) throw new CommandError('send a JSON body {"value": "..."} with Content-Type: application/json', 415);
    const value = body(ctx).value;
    if (typeof value !== 'string') throw new CommandError('value must be a string', 400, { value: 'must be a string' });
    await storeSecret(db, vault, web.actor(ctx), name, value);
    ctx.body = { name, set: true };
  });

  r.delete('/api/v1/secrets/:name', async (ctx) => {
    const name = nameOf(ctx.params.name!);
    await clearSecret(db, web.actor(ctx), name);
    ctx.body = { name, set: false };
  });

  return r;
}
