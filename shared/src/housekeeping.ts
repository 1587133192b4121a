/**
 * Periodic housekeeping run by the panel: prune the decision log past its retention, and delete sessions that
 * ended more than a day ago. Each run is one write transaction; pruning is logged, not audited per row
 * (an audit entry records each run that removed something).
 */
import type { Database } from './db/sqlite.ts';
import type { Logger } from './log.ts';
import { appendAudit } from './audit.ts';
import { loadSettings } from './settings.ts';
import { pruneDecisions } from './repos/decisions.ts';
import { pruneSessions } from './repos/sessions.ts';
import { pruneObservability } from './repos/access-log.ts';

export async function runHousekeeping(db: Database, now = Date.now()): Promise<{ decisions: number; sessions: number; traffic: number }> {
  const settings = await loadSettings(db);
  return db.write(async (tx) => {
    const decisions = await pruneDecisions(tx, settings['decision_log.retention'], now);
    const sessions = await pruneSessions(tx, now);
    const traffic = await pruneObservability(tx, settings, now);
    if (decisions || sessions || traffic) await appendAudit(tx, { name: 'system' }, { action: 'housekeeping.prune', target: 'database', details: { decisions, sessions, traffic } }, now);
    return { decisions, sessions, traffic };
  });
}

/** Runs housekeeping now and then every `everyMs` (default hourly). Returns a stop function. */
export function scheduleHousekeeping(db: Database, log: Logger, everyMs = 3_600_000): () => void {
  const run = () =>
    runHousekeeping(db).then(
      (r) => (r.decisions || r.sessions || r.traffic) && log.info(r, 'housekeeping pruned old records'),
      (err) => log.error({ err }, 'housekeeping failed'),
    );
  void run();
  const t = setInterval(run, everyMs);
  t.unref();
  return () => clearInterval(t);
}
