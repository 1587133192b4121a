/**
 * Backups in the panel and the JSON API: list, create, verify, download, restore (from the list or an upload).
 * Restore paths (`/backups/…restore…`, `/api/v1/backups/…/restore`) are behind the re-authentication gate.
 *
 * Pages:  GET /backups, POST /backups, GET /backups/:name/verify, GET /backups/:name/download,
 *         POST /backups/:name/restore, POST /backups/restore-upload (multipart: _csrf, confirm, file)
 * API:    GET /api/v1/backups, POST /api/v1/backups, GET /api/v1/backups/:name/verify,
 *         POST /api/v1/backups/:name/restore {"confirm": true}
 */
import fs from 'node:fs';
import path from 'node:path';
import Router from '@koa/router';
import { recordEvent } from '@argos/shared/audit';
import {
  BACKUP_NAME,
  DEFAULT_LIMITS,
  createBackup,
  listBackups,
  pruneBackups,
  resolveBackup,
  restoreBackup,
  verifyBackup,
  type BackupContext,
  type BackupListing,
  type RestoreResult,
} from '@argos/shared/backup';
import { CommandError } from '@argos/shared/commands/errors';
import { loadSettings } from '@argos/shared/settings';
import { takeUpload } from '../multipart.ts';
import { body, isApi, type Ctx, type PanelState, type Web } from '../web.ts';

const sizeText = (n: number) => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);
const present = (b: BackupListing) => ({ name: b.name, kind: b.kind, createdAt: b.createdAt, size: b.size, recorded: b.recorded !== null });
const confirmed = (v: unknown) => v === true || v === '1' || v === 'on' || v === 'true';

/** The paths whose multipart body `uploadFields` pre-reads (app.ts). */
export const UPLOAD_PATHS = /^\/backups\/restore-upload$/;

export function backupRoutes(web: Web): Router<PanelState> {
  const { db, vault, config, log } = web.deps;
  const ctxOf = (): BackupContext => ({ db, vault, masterKey: config.masterKey, dataDir: config.dataDir });
  const r = new Router<PanelState>();

  const fileOf = (name: string) => {
    if (!BACKUP_NAME.test(name)) throw new CommandError(`no backup named ${name.slice(0, 80)}`, 404);
    return resolveBackup(config.dataDir, name, false);
  };

  const show = async (ctx: Ctx, verified: Record<string, unknown> | null = null, status = 200) => {
    const settings = await loadSettings(db);
    web.render(
      ctx,
      'backups',
      {
        pageTitle: 'Backups',
        section: 'backups',
        backups: (await listBackups(ctxOf())).map((b) => ({ ...present(b), sizeText: sizeText(b.size) })),
        schedule: settings['backup.schedule'],
        keep: settings['backup.keep'],
        maxUploadText: sizeText(DEFAULT_LIMITS.archiveBytes),
        verified,
      },
      status,
    );
  };

  const create = async (ctx: Ctx) => {
    const actor = web.actor(ctx);
    const info = await createBackup(ctxOf(), { kind: 'manual', actor });
    const pruned = await pruneBackups(ctxOf(), (await loadSettings(db))['backup.keep'], actor);
    return { info, pruned };
  };

  const restoreFlash = (ctx: Ctx, res: RestoreResult) =>
    web.flash(
      ctx,
      'ok',
      `Restored ${res.restored} (made ${res.manifest.created}${res.migratedFrom !== null ? `, migrated from schema ${res.migratedFrom}` : ''}). ` +
        `The previous database was saved as ${res.safetyBackup}. Running services switched to the restored data.`,
    );

  const refused = (ctx: Ctx, e: unknown, where: string) => {
    if (!(e instanceof CommandError)) throw e;
    log.warn({ backup: where, reason: e.message, actor: ctx.state.user?.username }, 'backup restore refused');
    web.flash(ctx, 'error', `Restore refused: ${e.message} The live database was not changed.`);
    web.seeOther(ctx, '/backups');
  };

  // ---------------------------------------------------------------------------------------------- pages

  r.get('/backups', (ctx) => show(ctx));

  r.post('/backups', async (ctx) => {
    const { info, pruned } = await create(ctx);
    web.flash(ctx, 'ok', `Backup ${info.name} written (${sizeText(info.size)}).${pruned.length ? ` Retention deleted ${pruned.length} older backup(s).` : ''}`);
    web.seeOther(ctx, '/backups');
  });

  r.get('/backups/:name/verify', async (ctx) => {
    const name = ctx.params.name!;
    try {
      const v = await verifyBackup(ctxOf(), fileOf(name));
      await show(ctx, {
        ok: true,
        name,
        created: v.manifest.created,
        argosVersion: v.manifest.argos_version,
        schemaVersion: v.manifest.schema_version,
        dbSha256: v.manifest.db_sha256,
        signedBy: v.signedBy,
        recorded: v.recorded,
      });
    } catch (e) {
      if (!(e instanceof CommandError) || e.status === 404) throw e;
      await show(ctx, { ok: false, name, error: e.message }, 422);
    }
  });

  r.get('/backups/:name/download', async (ctx) => {
    const file = fileOf(ctx.params.name!);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(file);
    } catch {
      throw new CommandError(`no backup named ${ctx.params.name}`, 404);
    }
    if (!st.isFile()) throw new CommandError(`no backup named ${ctx.params.name}`, 404);
    await recordEvent(db, web.actor(ctx), { action: 'backup.download', target: path.basename(file), details: { size: st.size } });
    ctx.type = 'application/gzip';
    ctx.set('Content-Disposition', `attachment; filename="${path.basename(file)}"`);
    ctx.set('Cache-Control', 'no-store');
    ctx.length = st.size;
    ctx.body = fs.createReadStream(file);
  });

  r.post('/backups/:name/restore', async (ctx) => {
    const name = ctx.params.name!;
    if (!confirmed(body(ctx).confirm)) {
      web.flash(ctx, 'warn', 'Tick the confirmation box to restore: it replaces the live database (after a safety backup).');
      return web.seeOther(ctx, '/backups');
    }
    try {
      restoreFlash(ctx, await restoreBackup(ctxOf(), fileOf(name), { actor: web.actor(ctx) }));
    } catch (e) {
      return refused(ctx, e, name);
    }
    web.seeOther(ctx, '/backups');
  });

  r.post('/backups/restore-upload', async (ctx) => {
    const upload = takeUpload(ctx);
    if (!upload) throw new CommandError('choose a backup file to upload', 400);
    if (!confirmed(body(ctx).confirm)) {
      web.flash(ctx, 'warn', 'Tick the confirmation box to restore: it replaces the live database (after a safety backup).');
      return web.seeOther(ctx, '/backups');
    }
    const dir = fs.mkdtempSync(path.join(config.dataDir, '.upload-'));
    const file = path.join(dir, 'upload.tar.gz');
    try {
      const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      try {
        await upload.reader.file((b) => void fs.writeSync(fd, b), DEFAULT_LIMITS.archiveBytes);
      } finally {
        fs.closeSync(fd);
      }
      while (await upload.reader.next()) {
        /* ignore fields after the file */
      }
      restoreFlash(ctx, await restoreBackup(ctxOf(), file, { actor: web.actor(ctx) }));
    } catch (e) {
      return refused(ctx, e, `upload ${upload.part.filename ?? ''}`.slice(0, 120));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    web.seeOther(ctx, '/backups');
  });

  // ---------------------------------------------------------------------------------------------- JSON API

  r.get('/api/v1/backups', async (ctx) => {
    const settings = await loadSettings(db);
    ctx.body = { backups: (await listBackups(ctxOf())).map(present), schedule: settings['backup.schedule'], keep: settings['backup.keep'] };
  });

  r.post('/api/v1/backups', async (ctx) => {
    const { info, pruned } = await create(ctx);
    ctx.status = 201;
    ctx.body = {
      backup: { name: info.name, kind: info.kind, createdAt: info.createdAt, size: info.size, dbSha256: info.dbSha256, archiveSha256: info.archiveSha256 },
      pruned,
    };
  });

  r.get('/api/v1/backups/:name/verify', async (ctx) => {
    try {
      const v = await verifyBackup(ctxOf(), fileOf(ctx.params.name!));
      ctx.body = { ok: true, name: v.name, manifest: v.manifest, archiveSha256: v.archiveSha256, size: v.size, signedBy: v.signedBy, recorded: v.recorded };
    } catch (e) {
      if (!(e instanceof CommandError) || e.status === 404) throw e;
      ctx.status = 422;
      ctx.body = { ok: false, error: e.message };
    }
  });

  r.post('/api/v1/backups/:name/restore', async (ctx) => {
    if (!isApi(ctx) || !ctx.is('application/json')) throw new CommandError('send a JSON body {"confirm": true} with Content-Type: application/json', 415);
    if (!confirmed(body(ctx).confirm))
      throw new CommandError('restoring replaces the live database (after a safety backup): send {"confirm": true}', 400, { confirm: 'required' });
    const name = ctx.params.name!;
    try {
      const res = await restoreBackup(ctxOf(), fileOf(name), { actor: web.actor(ctx) });
      ctx.body = { ok: true, ...res };
    } catch (e) {
      if (!(e instanceof CommandError) || e.status === 404) throw e;
      log.warn({ backup: name, reason: e.message, actor: ctx.state.user?.username }, 'backup restore refused');
      ctx.status = e.status;
      ctx.body = { ok: false, error: e.message };
    }
  });

  return r;
}
