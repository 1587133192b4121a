/** GET /settings and one small form per setting (POST /settings/:key, POST /settings/:key/reset). */
import Router from '@koa/router';
import { defaultCookieDomain } from '@argos/shared/config';
import { CommandError, type FieldErrors } from '@argos/shared/commands/hosts';
import { changeSetting, resetSetting } from '@argos/shared/commands/settings';
import { isSettingKey, loadSettings } from '@argos/shared/settings';
import { presentSettings } from '../presenters.ts';
import { body, commandFailure, str, type Ctx, type PanelState, type Web } from '../web.ts';

export function settingsRoutes(web: Web): Router<PanelState> {
  const { db, config } = web.deps;
  const r = new Router<PanelState>();

  const show = async (ctx: Ctx, status = 200, submitted: { key?: string; value?: string; error?: string } = {}) => {
    const settings = presentSettings(await loadSettings(db)).map((s) => ({
      ...s,
      input: s.key === submitted.key ? (submitted.value ?? s.value) : s.value,
      error: s.key === submitted.key ? (submitted.error ?? null) : null,
      note:
        s.key === 'cookie.domains' && s.isDefault
          ? `Empty, so visitor cookies use ${defaultCookieDomain(config.portalUrl)} (the parent domain of ARGOS_PORTAL_URL).`
          : null,
    }));
    const errors: FieldErrors = submitted.key && submitted.error ? { [submitted.key]: submitted.error } : {};
    web.render(ctx, 'settings', { pageTitle: 'Settings', section: 'settings', settings, errors }, status);
  };

  const settingKey = (raw: string) => {
    if (!isSettingKey(raw)) throw new CommandError(`There is no setting ${raw}.`, 404);
    return raw;
  };

  r.get('/settings', (ctx) => show(ctx));

  r.post('/settings/:key', async (ctx) => {
    const key = settingKey(ctx.params.key!);
    const value = str(body(ctx).value);
    try {
      await changeSetting(db, web.actor(ctx), key, value);
    } catch (e) {
      const f = commandFailure(e);
      if (!f) throw e;
      return show(ctx, f.status, { key, value, error: f.errors[key] ?? f.message });
    }
    web.flash(ctx, 'ok', `${key} saved.`);
    web.seeOther(ctx, `/settings#${key}`);
  });

  r.post('/settings/:key/reset', async (ctx) => {
    const key = settingKey(ctx.params.key!);
    await resetSetting(db, web.actor(ctx), key);
    web.flash(ctx, 'ok', `${key} reset to its default.`);
    web.seeOther(ctx, `/settings#${key}`);
  });

  return r;
}
