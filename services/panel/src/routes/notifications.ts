/**
 * GET /notifications: channels (SMTP, webhook), per-event toggles, "send test", delivery history.
 * POST /notifications/smtp | /notifications/webhook | /notifications/events | /notifications/test/:channel.
 * Every change goes through changeSetting / storeSecret (validated, audited); secrets are write-only.
 */
import Router from '@koa/router';
import { CommandError, type FieldErrors } from '@argos/shared/commands/hosts';
import { changeSetting, clearSecret, storeSecret } from '@argos/shared/commands/settings';
import { formatSetting, loadSettings, parseSetting, type SettingKey, type SettingsMap } from '@argos/shared/settings';
import { secretStatus } from '@argos/shared/secrets';
import { NOTIFY_EVENTS } from '@argos/shared/notify/events';
import { listDeliveries } from '@argos/shared/repos/notifications';
import { smtpChannel, webhookChannel, CHANNELS, type ChannelName } from '../notify/channels.ts';
import { sendTest } from '../notify/notifier.ts';
import { body, str, type Ctx, type PanelState, type Web } from '../web.ts';

const SMTP_FIELDS = { host: 'smtp.host', port: 'smtp.port', tls: 'smtp.tls', username: 'smtp.username', from: 'smtp.from', to: 'smtp.to' } as const satisfies Record<string, SettingKey>;
const EMAIL_RE = /^[^\s@<>,;"]+@[^\s@<>,;"]+$/;

export function notificationRoutes(web: Web): Router<PanelState> {
  const { db, vault } = web.deps;
  const r = new Router<PanelState>();

  const show = async (ctx: Ctx, status = 200, submitted: { form?: string; values?: Record<string, string>; errors?: FieldErrors } = {}) => {
    const settings = await loadSettings(db);
    const secrets = new Map((await secretStatus(db)).map((s) => [s.name, s.set]));
    const q = ctx.query;
    const channel = typeof q.channel === 'string' && (CHANNELS as readonly string[]).includes(q.channel) ? q.channel : '';
    const outcome = typeof q.outcome === 'string' && ['sent', 'failed', 'throttled', 'dropped'].includes(q.outcome) ? q.outcome : '';
    const history = await listDeliveries(db, { channel, outcome, limit: 100 });
    const obs = web.deps.observability ?? null;
    const smtpValues = Object.fromEntries(Object.entries(SMTP_FIELDS).map(([f, k]) => [f, formatSetting(k, settings[k])]));
    web.render(
      ctx,
      'notifications',
      {
        pageTitle: 'Notifications',
        section: 'notifications',
        smtp: {
          values: submitted.form === 'smtp' ? { ...smtpValues, ...submitted.values } : smtpValues,
          errors: submitted.form === 'smtp' ? (submitted.errors ?? {}) : {},
          passwordSet: secrets.get('smtp.password') ?? false,
          configured: smtpChannel({ db, vault }).configured(settings),
        },
        webhook: {
          values: submitted.form === 'webhook' ? { url: settings['webhook.url'], ...submitted.values } : { url: settings['webhook.url'] },
          errors: submitted.form === 'webhook' ? (submitted.errors ?? {}) : {},
          tokenSet: secrets.get('webhook.token') ?? false,
          configured: webhookChannel({ db, vault }).configured(settings),
        },
        events: NOTIFY_EVENTS.map((e) => ({ key: e.key, label: e.label, email: settings['notify.email_events'].includes(e.key), webhook: settings['notify.webhook_events'].includes(e.key) })),
        throttle: { groupWait: formatSetting('notify.group_wait', settings['notify.group_wait']), window: formatSetting('notify.throttle', settings['notify.throttle']) },
        stats: obs ? { depth: obs.notifier.depth, dropped: obs.notifier.dropped, totals: obs.notifier.totals, max: obs.notifier.opts.queueMax } : null,
        history,
        filter: { channel, outcome },
      },
      status,
    );
  };

  /** Validates every field first, then stores the ones that changed (each audited); nothing is stored on an error. */
  const applyFields = async (ctx: Ctx, form: string, pairs: Array<[field: string, key: SettingKey, raw: string]>, settings: SettingsMap): Promise<boolean> => {
    const errors: FieldErrors = {};
    for (const [field, key, raw] of pairs) {
      const p = parseSetting(key, raw);
      if (!p.ok) errors[field] = p.error.replace(`${key}: `, '');
    }
    if (Object.keys(errors).length) {
      await show(ctx, 400, { form, values: Object.fromEntries(pairs.map(([f, , v]) => [f, v])), errors });
      return false;
    }
    for (const [, key, raw] of pairs) {
      if (formatSetting(key, settings[key]) !== formatSetting(key, (parseSetting(key, raw) as { value: unknown }).value)) await changeSetting(db, web.actor(ctx), key, raw);
    }
    return true;
  };

  r.get('/notifications', (ctx) => show(ctx));

  r.post('/notifications/smtp', async (ctx) => {
    const b = body(ctx);
    const settings = await loadSettings(db);
    const values = Object.fromEntries(Object.keys(SMTP_FIELDS).map((f) => [f, str(b[f]).trim()]));
    const badTo = values.to!.split(/[\s,]+/).filter(Boolean).find((a) => !EMAIL_RE.test(a));
    const badFrom = values.from && !EMAIL_RE.test(values.from.replace(/^.*<([^>]*)>\s*$/, '$1'));
    if (badTo || badFrom) {
      const errors: FieldErrors = {};
      if (badTo) errors.to = `"${badTo}" is not an e-mail address`;
      if (badFrom) errors.from = 'not an e-mail address (name <address> is fine)';
      return show(ctx, 400, { form: 'smtp', values, errors });
    }
    const pairs = Object.entries(SMTP_FIELDS).map(([f, k]) => [f, k, values[f]!] as [string, SettingKey, string]);
    if (!(await applyFields(ctx, 'smtp', pairs, settings))) return;
    const password = str(b.password);
    if (password) await storeSecret(db, vault, web.actor(ctx), 'smtp.password', password);
    else if (str(b.clear_password) === '1') await clearSecret(db, web.actor(ctx), 'smtp.password');
    web.flash(ctx, 'ok', 'E-mail settings saved.');
    web.seeOther(ctx, '/notifications#smtp');
  });

  r.post('/notifications/webhook', async (ctx) => {
    const b = body(ctx);
    const settings = await loadSettings(db);
    if (!(await applyFields(ctx, 'webhook', [['url', 'webhook.url', str(b.url).trim()]], settings))) return;
    const token = str(b.token);
    if (token) await storeSecret(db, vault, web.actor(ctx), 'webhook.token', token);
    else if (str(b.clear_token) === '1') await clearSecret(db, web.actor(ctx), 'webhook.token');
    web.flash(ctx, 'ok', 'Webhook settings saved.');
    web.seeOther(ctx, '/notifications#webhook');
  });

  r.post('/notifications/events', async (ctx) => {
    const b = body(ctx);
    const settings = await loadSettings(db);
    const picked = (prefix: string) => NOTIFY_EVENTS.filter((e) => str(b[`${prefix}_${e.key}`]) === '1').map((e) => e.key).join(',');
    if (!(await applyFields(ctx, 'events', [['email', 'notify.email_events', picked('email')], ['webhook', 'notify.webhook_events', picked('webhook')]], settings))) return;
    web.flash(ctx, 'ok', 'Notification events saved.');
    web.seeOther(ctx, '/notifications#events');
  });

  r.post('/notifications/test/:channel', async (ctx) => {
    const channel = ctx.params.channel as ChannelName;
    if (!(CHANNELS as readonly string[]).includes(channel)) throw new CommandError(`There is no channel ${ctx.params.channel}.`, 404);
    // Fresh settings: a test right after saving the form uses what was just saved.
    const ch = web.deps.observability?.channels[channel] ?? (channel === 'smtp' ? smtpChannel : webhookChannel)({ db, vault });
    const result = await sendTest(db, ch, await loadSettings(db));
    if (result.ok) web.flash(ctx, 'ok', `Test ${channel === 'smtp' ? 'e-mail' : 'webhook'} sent.`);
    else web.flash(ctx, 'error', `Test ${channel === 'smtp' ? 'e-mail' : 'webhook'} failed: ${result.error}`);
    web.seeOther(ctx, `/notifications#${channel}`);
  });

  return r;
}
