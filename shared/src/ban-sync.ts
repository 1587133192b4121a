/**
 * Shares login-regulation bans between processes: a ban decided by the portal (gatekeeper) also closes the
 * panel login and vice versa, and a ban the operator lifts (`argos ban remove`) is lifted everywhere. Each process polls
 * the 'bans' change counter and loads active bans when it moves.
 */
import type { Database } from './db/sqlite.ts';
import type { Logger } from './log.ts';
import type { Regulator } from './regulation.ts';
import { listActiveBans } from './repos/bans.ts';
import { changeCounter } from './store.ts';

export function syncBans(db: Database, regulator: Regulator, log: Logger, everyMs = 1000): () => void {
  let last = -1;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const c = await changeCounter(db, 'bans');
      if (c !== last) {
        regulator.syncBans(await listActiveBans(db));
        last = c;
      }
    } catch (err) {
      log.warn({ err }, 'ban sync failed; keeping the bans already known');
    } finally {
      busy = false;
    }
  };
  void tick();
  const t = setInterval(() => void tick(), everyMs);
  t.unref();
  return () => clearInterval(t);
}
