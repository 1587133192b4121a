/** `argos geo update` and `argos geo info`: the country database (download, validation, attribution). */
import { CLI_ACTOR } from '@argos/shared/audit';
import { loadSettings } from '@argos/shared/settings';
import { GeoDb } from '@argos/shared/geo';
import { geoUpdateStatus, runGeoUpdate } from '@argos/shared/geo-update';
import { str, type Command } from '../framework.ts';

const when = (ms: number | null) => (ms ? new Date(ms).toISOString() : 'never');

export const geoCommands: Command[] = [
  {
    path: ['geo', 'update'],
    summary: 'Download, validate and install a fresh country database now (the gatekeeper reloads it within seconds)',
    usage: 'argos geo update [--url URL] [--json]',
    details:
      'Downloads from the setting geo.update_url (default: the DB-IP Lite country database of this month, or the previous one),\n' +
      'or from --url. The file is unpacked with size limits, validated and swapped in atomically; a failure keeps the current database.',
    options: { url: { type: 'string' } },
    args: 0,
    json: true,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const settings = await loadSettings(db);
      const url = str(a, 'url') ?? settings['geo.update_url'];
      const r = await runGeoUpdate(db, { dataDir: ctx.config().dataDir, url, actor: CLI_ACTOR });
      if (ctx.wantsJson) ctx.json(r);
      else if (r.ok) ctx.out(`Installed ${r.databaseType} (built ${r.buildEpoch}, ${r.bytes} bytes) from ${r.url}.\nThe gatekeeper picks it up within a few seconds.`);
      else ctx.err(`Geo update failed: ${r.error}\nThe current database stays in use.`);
      return r.ok ? 0 : 1;
    },
  },
  {
    path: ['geo', 'info'],
    summary: 'Show the country database in use: name, build date, attribution, last update',
    usage: 'argos geo info [--json]',
    args: 0,
    json: true,
    async run(ctx) {
      const { db } = await ctx.store();
      const geo = await GeoDb.openDefault(ctx.config().dataDir);
      const info = geo.info();
      const st = await geoUpdateStatus(db);
      if (ctx.wantsJson) return void ctx.json({ database: info, update: st });
      ctx.out(
        [
          `database:     ${info.databaseType} (${info.source})`,
          `file:         ${info.file}`,
          `built:        ${info.buildEpoch}`,
          `IP versions:  ${info.ipVersion === 6 ? 'IPv4 and IPv6' : 'IPv4 only'}`,
          `attribution:  ${info.attribution.text}${info.attribution.url ? ` (${info.attribution.url})` : ''}`,
          `licence:      ${info.attribution.licence}${info.attribution.licenceUrl ? ` ${info.attribution.licenceUrl}` : ''}`,
          `last update:  ${when(st.lastUpdateAt)}${st.lastSource ? ` from ${st.lastSource}` : ''}`,
          `last attempt: ${when(st.lastAttemptAt)}${st.lastError ? `: FAILED: ${st.lastError}` : ''}`,
        ].join('\n'),
      );
    },
  },
];
