/** `argos ban list|remove`: see and lift login-regulation bans (a ban covers every host, the panel included). */
import { mutate, CLI_ACTOR } from '@argos/shared/audit';
import { CommandError } from '@argos/shared/commands/errors';
import { deleteBan, listActiveBans } from '@argos/shared/repos/bans';
import { clientKey, normalizeIp } from '@argos/shared/net';
import type { Command } from '../framework.ts';
import { table } from '../table.ts';

export const banCommands: Command[] = [
  {
    path: ['ban', 'list'],
    summary: 'List active login-regulation bans (clients and user+client pairs)',
    usage: 'argos ban list [--json]',
    args: 0,
    json: true,
    async run(ctx) {
      const { db } = await ctx.store();
      const bans = await listActiveBans(db);
      if (ctx.wantsJson) return void ctx.json(bans);
      ctx.out(bans.length ? table(['KEY', 'UNTIL (UTC)', 'STRIKES', 'REASON'], bans.map((b) => [b.key, new Date(b.until).toISOString().slice(0, 19).replace('T', ' '), b.strikes, b.reason])) : 'No active bans.');
    },
  },
  {
    path: ['ban', 'remove'],
    summary: 'Lift a ban: an IP address (or IPv6 /64) or a key from `argos ban list`; running services follow within a second',
    usage: 'argos ban remove <ip|key>',
    args: 1,
    async run(ctx, a) {
      const raw = a.positionals[0]!;
      const ip = normalizeIp(raw);
      const keys = ip ? [`client:${clientKey(ip)}`] : [raw];
      const { db } = await ctx.store();
      const active = await listActiveBans(db);
      const targets = ip ? active.filter((b) => keys.includes(b.key) || b.key.endsWith(`|${clientKey(ip)}`)).map((b) => b.key) : keys;
      const removed = await mutate(db, CLI_ACTOR, async (tx) => {
        let n = 0;
        for (const k of targets) if (await deleteBan(tx, k)) n++;
        return { result: n, audit: { action: 'regulation.unban', target: raw, details: { removed: n } } };
      });
      if (!removed) throw new CommandError(`no active ban for ${raw} (see \`argos ban list\`)`, 404);
      ctx.out(`Lifted ${removed} ban(s) for ${raw}.`);
    },
  },
];
