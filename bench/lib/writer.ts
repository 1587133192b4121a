/**
 * Panel-side writes from their own process (as the panel or the CLI would make them), at a fixed rate while
 * told to run: alternately one audited mutation (`mutate`, an audit entry on the hash chain) and one host edit
 * through the shared command (`editHost`: host row + audit entry + the config change counter, which makes the
 * gatekeeper reload its state on its next poll). The edited host is not the one under load, so the decisions
 * being measured do not change; the reload cost is the same whichever host changed.
 *
 * Run with `node --import tsx bench/lib/writer.ts` as an IPC child: messages {cmd:'start', rate} / {cmd:'stop'}
 * → {writes (completed), failed, lastError, seconds, late (ticks skipped: 100 in flight), maxMs (slowest write)}; env: ARGOS_DATA_DIR, ARGOS_MASTER_KEY, BENCH_EDIT_HOST.
 */
import { openStore } from '@argos/shared/store';
import { mutate } from '@argos/shared/audit';
import { editHost } from '@argos/shared/commands/hosts';

const actor = { name: 'admin:bench', ip: '127.0.0.1', userAgent: 'argos-bench writer' };
const host = process.env.BENCH_EDIT_HOST ?? 'edit.bench.test';

const { db } = await openStore({ dataDir: process.env.ARGOS_DATA_DIR!, masterKey: Buffer.from(process.env.ARGOS_MASTER_KEY!, 'hex') }, 'migrator');

let running = false;
let loop: ReturnType<typeof run> | null = null;

/**
 * Offered load: a write is started every 1/rate seconds whether or not the previous one finished (as independent
 * panel requests would), queued by the process's single-writer queue; at most 100 in flight (a bounded loop).
 */
async function run(rate: number) {
  const interval = 1000 / rate;
  const started = performance.now();
  let issued = 0;
  let writes = 0;
  let late = 0;
  let maxMs = 0;
  let failed = 0;
  let lastError: string | null = null;
  const inflight = new Set<Promise<void>>();
  const one = async (n: number) => {
    const t = performance.now();
    try {
      if (n % 2 === 0) {
        await mutate(db, actor, async () => ({ result: null, audit: { action: 'bench.note', target: 'bench', details: { n } } }));
      } else {
        // Toggle a field that matters to nobody under load: the edited host's rate limit.
        await editHost(db, actor, host, { rateLimit: n % 4 === 1 ? '100/s' : '101/s' });
      }
      writes++;
    } catch (e) {
      // A failed write is what an operator would see as an error in the panel (e.g. SQLITE_BUSY): counted, reported.
      failed++;
      lastError = e instanceof Error ? e.message : String(e);
    }
    maxMs = Math.max(maxMs, performance.now() - t);
  };
  while (running) {
    const wait = started + issued * interval - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (inflight.size >= 100) {
      late++;
      await Promise.race(inflight);
      continue;
    }
    const p: Promise<void> = one(issued++).finally(() => inflight.delete(p));
    inflight.add(p);
  }
  await Promise.all(inflight);
  return { writes, failed, lastError, seconds: (performance.now() - started) / 1000, late, maxMs };
}

process.on('message', (m: { cmd: string; rate?: number }) => {
  if (m.cmd === 'start' && !running) {
    running = true;
    loop = run(m.rate ?? 200);
    process.send!({ started: true });
  } else if (m.cmd === 'stop' && loop) {
    running = false;
    void loop.then((r) => process.send!(r));
    loop = null;
  } else if (m.cmd === 'exit') {
    void db.close().then(() => process.exit(0));
  }
});
process.send!({ ready: true });
