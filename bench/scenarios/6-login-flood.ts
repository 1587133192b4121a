/**
 * Scenario 6: login flood. Logged-in traffic on /verify at a steady, moderate rate (wrk, few connections, each
 * pausing between requests, so latency reflects service time and not a saturated queue), idle versus during 200
 * concurrent wrong-password logins to the portal from 200 source addresses (127.0.1.x; regulation limit raised so every
 * attempt is hashed). Password hashing is bounded (one argon2id at a time, shared/src/password.ts), so /verify keeps
 * its core. Target: /verify p99 during the flood ≤ 2 × idle p99.
 */
import type { Scenario } from '../lib/context.ts';
import { runWrk, staticScript, assertClean, type WrkResult } from '../lib/wrk.ts';
import { alternate, median, round } from '../lib/stats.ts';
import { startLoginFlood, type FloodStats, type LoginFlood } from '../lib/login-flood.ts';
import { sleep, threadCpuSeconds } from '../lib/proc.ts';
import { summary } from './1-verify.ts';

export const scenario: Scenario = {
  id: 6,
  title: 'login flood',
  async run(ctx) {
    const t = ctx.timing('flood');
    const concurrency = 200;
    const connections = 8;
    const thinkMs = 4;
    ctx.argos.cli(['settings', 'set', 'regulation.max_failures', '1000']);
    await sleep(600); // the gatekeeper picks settings up on its next poll (250 ms)
    const script = staticScript({ path: '/verify', headers: ctx.verifyHeaders({ host: ctx.hosts.app, token: ctx.alice.token }), thinkMs });
    const load = (seconds: number) => runWrk({ url: `http://127.0.0.1:${ctx.gk.port}`, connections, threads: 1, durationS: seconds, script });
    // Diagnostics per run: the gatekeeper's CPU in cores, its main thread (/verify, the portal's JavaScript) apart from
    // its other threads (libuv pool: argon2id hashing, SQLite), and its event-loop delay.
    type Diag = { cores: number; mainThread: number; otherThreads: number; lagP99: number; lagMax: number };
    const diag: Record<'flood' | 'idle', Diag[]> = { flood: [], idle: [] };
    const measured = async (key: 'flood' | 'idle') => {
      await ctx.gk.loopLag();
      const c0 = threadCpuSeconds(ctx.gk.pid) ?? { main: 0, others: 0 };
      const r = await load(t.measureS);
      const c1 = threadCpuSeconds(ctx.gk.pid) ?? c0;
      const lag = await ctx.gk.loopLag();
      const mainThread = round((c1.main - c0.main) / r.durationS, 2);
      const otherThreads = round((c1.others - c0.others) / r.durationS, 2);
      diag[key].push({ cores: round(mainThread + otherThreads, 2), mainThread, otherThreads, lagP99: round(lag.p99, 1), lagMax: round(lag.max, 1) });
      return r;
    };
    let flood: LoginFlood | null = null;
    const floods: FloodStats[] = [];
    const portal = `${ctx.argos.portalHost}:${new URL(ctx.argos.env.ARGOS_PORTAL_URL!).port}`;
    try {
      const rounds = await alternate<WrkResult>(
        t.rounds,
        {
          name: 'during login flood',
          warmup: async () => {
            flood = await startLoginFlood({ port: ctx.gk.port, portalHost: portal, concurrency });
            await sleep(t.warmupS * 1000); // let the hashing queue fill
          },
          run: async () => {
            const r = await measured('flood');
            const s = await flood!.stop();
            flood = null;
            floods.push(s);
            assertClean('verify during flood', r);
            ctx.expectStatus('verify during flood', r, 'success');
            if (s.rejected === 0) throw new Error(`login flood: no attempt was hashed (${JSON.stringify(s)})`);
            return r;
          },
        },
        {
          name: 'idle',
          warmup: () => load(t.warmupS),
          run: async () => {
            const r = await measured('idle');
            assertClean('verify idle', r);
            ctx.expectStatus('verify idle', r, 'success');
            return r;
          },
        },
        (v, i, r) =>
          ctx.log(
            `  round ${i + 1} ${v === 'A' ? 'login flood' : 'idle       '} /verify ${r.rps.toFixed(0)} req/s, p50 ${r.latency.p50.toFixed(2)} ms, p99 ${r.latency.p99.toFixed(2)} ms` +
              `; gatekeeper main thread ${diag[v === 'A' ? 'flood' : 'idle'].at(-1)!.mainThread} + other threads ${diag[v === 'A' ? 'flood' : 'idle'].at(-1)!.otherThreads} cores, loop delay p99 ${diag[v === 'A' ? 'flood' : 'idle'].at(-1)!.lagP99} ms max ${diag[v === 'A' ? 'flood' : 'idle'].at(-1)!.lagMax} ms` +
              (v === 'A'
                ? `; logins ${floods.at(-1)!.attempts} (${floods.at(-1)!.rejected} hashed, ${floods.at(-1)!.throttled} throttled, ${floods.at(-1)!.errors} errors)`
                : ''),
          ),
      );
      const p99f = median(rounds.a.map((r) => r.latency.p99));
      const p99i = median(rounds.b.map((r) => r.latency.p99));
      const ratio = p99f / p99i;
      const hashed = floods.reduce((a, s) => a + s.rejected, 0);
      const secs = floods.reduce((a, s) => a + s.seconds, 0);
      return {
        id: 6,
        name: `Login flood: ${concurrency} concurrent wrong-password portal logins from ${concurrency} source addresses vs idle; logged-in /verify traffic (${connections} conns, ${thinkMs} ms think time)`,
        metric: `/verify p99 ms (median of ${t.rounds} rounds; ratio = flood/idle); ${round(hashed / secs, 1)} password checks/s during the flood`,
        value: round(p99f, 3),
        baseline: round(p99i, 3),
        ratio: round(ratio, 3),
        target: 'ratio <= 2.0',
        pass: ratio <= 2,
        details: {
          rounds: rounds.order,
          during_flood: rounds.a.map(summary),
          idle: rounds.b.map(summary),
          logins: floods,
          gatekeeper: diag,
        },
      };
    } finally {
      const f = flood as LoginFlood | null;
      if (f) await f.stop();
      ctx.argos.cli(['settings', 'set', 'regulation.max_failures', '5']);
    }
  },
};
