/** `argos backup create|list|verify|restore` and `argos rotate-master-key`. */
import { CLI_ACTOR } from '@argos/shared/audit';
import { createBackup, listBackups, pruneBackups, resolveBackup, restoreBackup, verifyBackup, type BackupContext } from '@argos/shared/backup';
import { parseMasterKey, rotateMasterKey } from '@argos/shared/keys';
import { loadSettings } from '@argos/shared/settings';
import { CommandError } from '@argos/shared/commands/errors';
import { flag, UsageError, type CliContext, type Command } from '../framework.ts';
import { table } from '../table.ts';

async function backupContext(ctx: CliContext): Promise<BackupContext> {
  const { db, vault } = await ctx.store();
  const config = ctx.config();
  return { db, vault, masterKey: config.masterKey, dataDir: config.dataDir };
}

/** ARGOS_BACKUP_MASTER_KEY: the master key an older backup was made under (after a rotation), if given. */
function backupMasterKey(ctx: CliContext): Buffer | null {
  const raw = ctx.env.ARGOS_BACKUP_MASTER_KEY;
  return raw ? parseMasterKey(raw, 'ARGOS_BACKUP_MASTER_KEY') : null;
}

const when = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, 'Z');
const mib = (n: number) => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

export const backupCommands: Command[] = [
  {
    path: ['backup', 'create'],
    summary: 'Make a backup now (signed .tar.gz in <data dir>/backups, mode 0600)',
    usage: 'argos backup create [--json]',
    details: 'Applies the retention setting backup.keep afterwards (the newest backup is always kept).',
    args: 0,
    json: true,
    async run(ctx) {
      const b = await backupContext(ctx);
      const info = await createBackup(b, { kind: 'manual', actor: CLI_ACTOR });
      const settings = await loadSettings(b.db);
      const pruned = await pruneBackups(b, settings['backup.keep'], CLI_ACTOR);
      if (ctx.wantsJson) return void ctx.json({ ...info, pruned });
      ctx.out(`Backup written: ${info.file} (${mib(info.size)}, database SHA-256 ${info.dbSha256})`);
      if (pruned.length) ctx.out(`Retention (backup.keep = ${settings['backup.keep']}) deleted: ${pruned.join(', ')}`);
    },
  },
  {
    path: ['backup', 'list'],
    summary: 'List the backups in the backups folder, newest first',
    usage: 'argos backup list [--json]',
    args: 0,
    json: true,
    async run(ctx) {
      const b = await backupContext(ctx);
      const list = await listBackups(b);
      if (ctx.wantsJson) return void ctx.json({ backups: list });
      if (!list.length) return void ctx.out('No backups yet. Make one with: argos backup create');
      ctx.out(
        table(
          ['NAME', 'KIND', 'CREATED', 'SIZE', 'RECORDED'],
          list.map((l) => [l.name, l.kind, when(l.createdAt), mib(l.size), l.recorded ? 'yes' : 'no']),
        ),
      );
    },
  },
  {
    path: ['backup', 'verify'],
    summary: 'Check a backup’s integrity and authenticity (HMAC, SHA-256, structure) without extracting it',
    usage: 'argos backup verify <file|name> [--json]',
    details:
      'Exit status 0 when the backup verifies, 1 when it is refused (the reason is printed).\nA backup made under an older master key (before a rotation) verifies with ARGOS_BACKUP_MASTER_KEY=<that key>.',
    args: 1,
    json: true,
    async run(ctx, a) {
      const b = await backupContext(ctx);
      const file = resolveBackup(b.dataDir, a.positionals[0]!, true);
      try {
        const r = await verifyBackup(b, file, { backupMasterKey: backupMasterKey(ctx) });
        if (ctx.wantsJson) return void ctx.json(r);
        ctx.out(
          `OK: ${r.name} is authentic and intact.\n  created ${r.manifest.created} by Argos ${r.manifest.argos_version}, schema ${r.manifest.schema_version}\n` +
            `  database SHA-256 ${r.manifest.db_sha256} (${r.manifest.db_size} bytes)\n  signed by ${r.signedBy}; ${r.recorded ? 'recorded in this database' : 'not recorded in this database'}`,
        );
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        if (ctx.wantsJson) ctx.json({ ok: false, error: e.message });
        else ctx.err(`REFUSED: ${e.message}`);
        return 1;
      }
    },
  },
  {
    path: ['backup', 'restore'],
    summary: 'Restore a backup into the live database (running services pick it up in place); needs --yes',
    usage: 'argos backup restore <file|name> --yes [--json]',
    details:
      'Verifies the archive first (size, structure, HMAC, SHA-256), extracts it into a temporary folder in the data\n' +
      'directory, checks the database, takes a safety backup of the current one, then swaps the content atomically.\n' +
      'Any refusal leaves the live database untouched. A backup made under an older master key (before a rotation)\n' +
      'needs that key in ARGOS_BACKUP_MASTER_KEY; its secrets are re-encrypted under the current key.',
    options: { yes: { type: 'boolean' } },
    args: 1,
    json: true,
    async run(ctx, a) {
      if (!flag(a, 'yes')) throw new UsageError('restoring replaces the live database (after a safety backup): confirm with --yes');
      const b = await backupContext(ctx);
      const file = resolveBackup(b.dataDir, a.positionals[0]!, true);
      try {
        const r = await restoreBackup(b, file, { actor: CLI_ACTOR, backupMasterKey: backupMasterKey(ctx) });
        if (ctx.wantsJson) return void ctx.json({ ok: true, ...r });
        ctx.out(
          `Restored ${r.restored} (made ${r.manifest.created}${r.migratedFrom !== null ? `, migrated from schema ${r.migratedFrom}` : ''}).\n` +
            `  safety backup of the previous database: ${r.safetyBackup}\n  running services reload within seconds (restore epoch ${r.restoreEpoch}).`,
        );
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        if (ctx.wantsJson) ctx.json({ ok: false, error: e.message });
        else ctx.err(`REFUSED: ${e.message}\nThe live database was not changed.`);
        return 1;
      }
    },
  },
  {
    path: ['rotate-master-key'],
    summary: 'Re-encrypt every secret under a new master key (from ARGOS_NEW_MASTER_KEY or --stdin), in one transaction',
    usage: 'ARGOS_NEW_MASTER_KEY=<64 hex> argos rotate-master-key | argos rotate-master-key --stdin',
    details:
      'Generate the new key with: openssl rand -hex 32\n' +
      'Everything is re-encrypted and verified in one transaction: an interruption leaves the database readable with the\n' +
      'old key. Running services stop with a message; put the new key in .env and start them again.',
    options: { stdin: { type: 'boolean' } },
    args: 0,
    async run(ctx, a) {
      const raw = flag(a, 'stdin') ? await ctx.stdin() : ctx.env.ARGOS_NEW_MASTER_KEY;
      if (!raw) throw new UsageError('give the new key in ARGOS_NEW_MASTER_KEY or on standard input with --stdin (generate one: openssl rand -hex 32)');
      const newKey = parseMasterKey(raw, flag(a, 'stdin') ? 'the new master key' : 'ARGOS_NEW_MASTER_KEY');
      const { db, vault } = await ctx.store();
      const r = await rotateMasterKey(db, vault, newKey, CLI_ACTOR);
      ctx.out(
        [
          `Master key rotated: key version ${r.fromVersion} -> ${r.toVersion}; re-encrypted ${r.secrets} named secret(s), ${r.totpSeeds} TOTP seed(s), the backup-signing key and the key check.`,
          '',
          'Put this line in .env in place of the old ARGOS_MASTER_KEY, then restart Argos:',
          '',
          `ARGOS_MASTER_KEY=${newKey.toString('hex')}`,
          '',
          'Store the new key in your password manager. Keep the old one as long as you keep backups made before',
          'this rotation: they still verify, and restoring one needs ARGOS_BACKUP_MASTER_KEY=<old key>.',
          'Running services stop within seconds with "master key rotated"; start them again with the new key.',
        ].join('\n'),
      );
    },
  },
];
