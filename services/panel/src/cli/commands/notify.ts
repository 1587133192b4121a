/** `argos notify test smtp|webhook` and `argos notify history`: check a notification channel, read the delivery history. */
import { loadSettings } from '@argos/shared/settings';
import { listDeliveries } from '@argos/shared/repos/notifications';
import { smtpChannel, webhookChannel, CHANNELS } from '../../notify/channels.ts';
import { sendTest } from '../../notify/notifier.ts';
import { str, UsageError, type Command } from '../framework.ts';
import { table } from '../table.ts';

const when = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

export const notifyCommands: Command[] = [
  {
    path: ['notify', 'test'],
    summary: 'Send a test notification through one channel now (smtp or webhook) and report the outcome',
    usage: 'argos notify test smtp|webhook [--json]',
    details:
      'Uses the settings smtp.* (password: secret smtp.password) or webhook.url (bearer token: secret webhook.token).\n' +
      'Example:\n  argos settings set smtp.host smtp.example.com\n  printf %s "$PASS" | argos secret set smtp.password --stdin\n  argos notify test smtp',
    args: 1,
    json: true,
    async run(ctx, a) {
      const name = a.positionals[0]!;
      if (!(CHANNELS as readonly string[]).includes(name)) throw new UsageError(`unknown channel "${name}" (smtp or webhook)`);
      const { db, vault } = await ctx.store();
      const channel = name === 'smtp' ? smtpChannel({ db, vault }) : webhookChannel({ db, vault });
      const r = await sendTest(db, channel, await loadSettings(db));
      if (ctx.wantsJson) ctx.json({ channel: name, ...r });
      else if (r.ok) ctx.out(`Test ${name === 'smtp' ? 'e-mail' : 'webhook'} sent.`);
      else ctx.err(`Test ${name === 'smtp' ? 'e-mail' : 'webhook'} failed: ${r.error}`);
      return r.ok ? 0 : 1;
    },
  },
  {
    path: ['notify', 'history'],
    summary: 'Show the latest notification deliveries (sent, failed with the error, throttled, dropped)',
    usage: 'argos notify history [--channel smtp|webhook] [--limit N] [--json]',
    options: { channel: { type: 'string' }, limit: { type: 'string' } },
    args: 0,
    json: true,
    async run(ctx, a) {
      const limit = Number(str(a, 'limit') ?? 20);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive whole number');
      const { db } = await ctx.store();
      const rows = await listDeliveries(db, { channel: str(a, 'channel'), limit });
      if (ctx.wantsJson) return void ctx.json(rows);
      if (!rows.length) return void ctx.out('No notifications yet.');
      ctx.out(table(['TIME (UTC)', 'CHANNEL', 'EVENT', 'OUTCOME', 'TRIES', 'MESSAGE'], rows.map((r) => [when(r.ts), r.channel, r.event, r.outcome, String(r.attempts), r.error ? `${r.subject} — ${r.error}` : r.subject])));
    },
  },
];
