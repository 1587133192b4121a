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
import { sleep, cpuSeconds } from '../lib/proc.ts';
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
    // Diagnostics: the gatekeeper's CPU (cores, main thread + hashing threads) and its event-loop delay per run.
    const diag: Record<'flood' | 'idle', { cores: number; lagP99: number; lagMax: number }[]> = { flood: [], idle: [] };
    const measured = async (key: 'flood' | 'idle') => {
      await ctx.gk.loopLag();
      const c0 = cpuSeconds(ctx.gk.pid) ?? 0;
      const r = await load(t.measureS);
      const lag = await ctx.gk.loopLag();
      diag[key].push({ cores: round(((cpuSeconds(ctx.gk.pid) ?? 0) - c0) / r.durationS, 2), lagP99: round(lag.p99, 1), lagMax: round(lag.max, 1) });
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
              `; gatekeeper ${diag[v === 'A' ? 'flood' : 'idle'].at(-1)!.cores} cores, loop delay p99 ${diag[v === 'A' ? 'flood' : 'idle'].at(-1)!.lagP99} ms max ${diag[v === 'A' ? 'flood' : 'idle'].at(-1)!.lagMax} ms` +
              (v === 'A' ? `; logins ${floods.at(-1)!.attempts} (${floods.at(-1)!.rejected} hashed, ${floods.at(-1)!.throttled} throttled, ${floods.at(-1)!.errors} errors)` : ''),
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
