/** `argos settings …` and `argos secret set`: database-stored settings and write-only secrets. */
import { CLI_ACTOR } from '@argos/shared/audit';
import { changeSetting, resetSetting, storeSecret } from '@argos/shared/commands/settings';
import { CommandError } from '@argos/shared/commands/errors';
import { SETTINGS, formatSetting, isSettingKey, loadSettings, type SettingKey } from '@argos/shared/settings';
import { defaultCookieDomain } from '@argos/shared/config';
import { flag, UsageError, type Command } from '../framework.ts';
import { table } from '../table.ts';

export const settingsCommands: Command[] = [
  {
    path: ['settings', 'list'],
    summary: 'List every setting with its value and meaning',
    usage: 'argos settings list [--json]',
    args: 0,
    json: true,
    async run(ctx) {
      const { db } = await ctx.store();
      const values = await loadSettings(db);
      const keys = Object.keys(SETTINGS) as SettingKey[];
      if (ctx.wantsJson) return void ctx.json(Object.fromEntries(keys.map((k) => [k, values[k]])));
      const shown = (k: SettingKey) => (k === 'cookie.domains' && !values[k].length ? `(default: ${defaultCookieDomain(ctx.config().portalUrl)})` : formatSetting(k, values[k]));
      ctx.out(table(['KEY', 'VALUE', 'MEANING'], keys.map((k) => [k, shown(k), SETTINGS[k].help])));
    },
  },
  {
    path: ['settings', 'get'],
    summary: 'Print one setting',
    usage: 'argos settings get <key> [--json]',
    args: 1,
    json: true,
    async run(ctx, a) {
      const key = a.positionals[0]!;
      if (!isSettingKey(key)) throw new CommandError(`unknown setting "${key}" (see \`argos settings list\`)`);
      const { db } = await ctx.store();
      const v = (await loadSettings(db))[key];
      if (ctx.wantsJson) ctx.json({ key, value: v });
      else ctx.out(formatSetting(key, v));
    },
  },
  {
    path: ['settings', 'set'],
    summary: 'Change a setting (applies to running services within 2 seconds)',
    usage: 'argos settings set <key> <value> | argos settings set <key> --reset',
    details: 'Examples:\n  argos settings set cookie.domains example.com,example.org\n  argos settings set session.idle_timeout 2h',
    options: { reset: { type: 'boolean' } },
    async run(ctx, a) {
      const [key, value] = a.positionals;
      if (!key) throw new UsageError('missing <key>');
      const { db } = await ctx.store();
      if (flag(a, 'reset')) {
        await resetSetting(db, CLI_ACTOR, key);
        return void ctx.out(`${key} reset to its default.`);
      }
      if (value === undefined || a.positionals.length > 2) throw new UsageError('expected <key> <value> (quote values with spaces)');
      const v = await changeSetting(db, CLI_ACTOR, key, value);
      ctx.out(`${key} = ${formatSetting(key as SettingKey, v)}`);
    },
  },
  {
    path: ['secret', 'set'],
    summary: 'Store a secret (encrypted) read from standard input; it is never printed back',
    usage: 'argos secret set <name> --stdin',
    details: 'Names: oidc.client_secret, smtp.password, crowdsec.bouncer_key, crowdsec.machine_password, webhook.token\nExample: printf %s "$SECRET" | argos secret set smtp.password --stdin',
    options: { stdin: { type: 'boolean' } },
    args: 1,
    async run(ctx, a) {
      if (!flag(a, 'stdin')) throw new UsageError('secrets are read from standard input only: pass --stdin');
      const value = await ctx.stdin();
      const { db, vault } = await ctx.store();
      await storeSecret(db, vault, CLI_ACTOR, a.positionals[0]!, value);
      ctx.out(`Secret ${a.positionals[0]} stored (encrypted).`);
    },
  },
];
