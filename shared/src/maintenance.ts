/**
 * The panel's backup and audit jobs: scheduled backups (`backup.schedule`, retention `backup.keep`) checked every
 * few minutes, and audit retention (`audit.retention`) applied once a day. Both are audited by the functions they
 * call (backup.create / backup.delete / audit.prune, actor `system`).
 */
import type { Logger } from './log.ts';
import { pruneAudit, SYSTEM_ACTOR } from './audit.ts';
import { runScheduledBackup, type BackupContext } from './backup.ts';
import { loadSettings } from './settings.ts';

const DAY_MS = 86_400_000;

export interface MaintenanceOptions {
  /** How often the schedule is checked (default 5 minutes). */
  checkEveryMs?: number;
  /** Delay before the first check (default 30 s, so startup is not slowed down). */
  firstAfterMs?: number;
  now?: () => number;
}

/** One round: a scheduled backup when due, and audit pruning when the last one is a day old. */
export async function runMaintenance(ctx: BackupContext, log: Logger, state: { lastAuditPrune: number }, now: number): Promise<void> {
  const settings = await loadSettings(ctx.db);
  try {
    const made = await runScheduledBackup(ctx, settings['backup.schedule'], settings['backup.keep'], now);
    if (made) log.info({ backup: made.name, size: made.size }, 'scheduled backup written');
  } catch (err) {
    log.error({ err: err instanceof Error ? err.message : String(err) }, 'scheduled backup failed');
  }
  if (now - state.lastAuditPrune >= DAY_MS) {
    state.lastAuditPrune = now;
    try {
      const n = await pruneAudit(ctx.db, now - settings['audit.retention'] * 1000, SYSTEM_ACTOR, now);
      if (n) log.info({ pruned: n }, 'audit entries past their retention pruned (anchor recorded)');
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'audit pruning failed');
    }
  }
}

/** Starts the jobs; returns a stop function. */
export function scheduleMaintenance(ctx: BackupContext, log: Logger, o: MaintenanceOptions = {}): () => void {
  const state = { lastAuditPrune: 0 };
  const now = o.now ?? Date.now;
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      await runMaintenance(ctx, log, state, now());
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'maintenance round failed');
    } finally {
      running = false;
    }
  };
  const first = setTimeout(() => void tick(), o.firstAfterMs ?? 30_000);
  first.unref();
  const timer = setInterval(() => void tick(), o.checkEveryMs ?? 300_000);
  timer.unref();
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
