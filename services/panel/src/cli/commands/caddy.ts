/** `argos caddy config|apply`: print the generated Caddy JSON, or push it to Caddy's admin API. */
import { CLI_ACTOR } from '@argos/shared/audit';
import { buildConfigFromDb, CaddySync } from '@argos/shared/caddy/sync';
import { silentLogger } from '@argos/shared/log';
import type { Command } from '../framework.ts';

export const caddyCommands: Command[] = [
  {
    path: ['caddy', 'config'],
    summary: 'Print the Caddy JSON configuration Argos generates from the database',
    usage: 'argos caddy config',
    args: 0,
    async run(ctx) {
      const { db } = await ctx.store();
      ctx.json(await buildConfigFromDb(ctx.config(), db));
    },
  },
  {
    path: ['caddy', 'apply'],
    summary: "Load the generated configuration into Caddy (its previous configuration keeps running if Caddy refuses)",
    usage: 'argos caddy apply',
    details: 'Uses ARGOS_CADDY_ADMIN, or the admin socket of the Caddy that `npm start` runs (<data dir>/caddy-admin.sock).\nThe running panel also re-applies automatically within a second of any host change.',
    args: 0,
    async run(ctx) {
      const { db } = await ctx.store();
      const sync = new CaddySync({ config: ctx.config(), db, log: silentLogger });
      if (sync.mode === 'absent') {
        ctx.err('Caddy is not installed here and ARGOS_CADDY_ADMIN is not set (apt-get install caddy, or point ARGOS_CADDY_ADMIN at your Caddy).');
        return 1;
      }
      const r = await sync.apply(CLI_ACTOR);
      if (!r.ok) {
        ctx.err(`Caddy did not take the configuration (whatever it was running before keeps running):\n${r.error}`);
        return 1;
      }
      ctx.out('Caddy configuration applied.');
    },
  },
];
