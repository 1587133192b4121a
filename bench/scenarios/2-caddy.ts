/**
 * Scenario 2: through Caddy. Two Caddy processes with the config Argos generates for one published host (same
 * upstream process): one with forward_auth to the gatekeeper, one with forward_auth to the trivial auth server.
 * wrk hits Caddy with the visitor's session cookie. Target: throughput ratio ≥ 0.9 (Caddy is the bottleneck).
 */
import path from 'node:path';
import type { Scenario } from '../lib/context.ts';
import { runWrk, staticScript, assertClean, type WrkResult } from '../lib/wrk.ts';
import { alternate, median, round } from '../lib/stats.ts';
import { startBenchCaddy } from '../lib/caddy.ts';
import { rawRequest } from '../lib/argos.ts';
import { cpuSeconds } from '../lib/proc.ts';
import { summary } from './1-verify.ts';

export const scenario: Scenario = {
  id: 2,
  title: 'through Caddy',
  async run(ctx) {
    const t = ctx.timing('caddy');
    const portalUrl = new URL(ctx.argos.env.ARGOS_PORTAL_URL!);
    const common = { domain: ctx.hosts.app, upstreamPort: ctx.upstream.port, portalUrl };
    const withArgos = await startBenchCaddy({ ...common, dir: path.join(ctx.argos.dir, 'caddy-argos'), authDial: `127.0.0.1:${ctx.gk.port}` });
    const withTrivial = await startBenchCaddy({ ...common, dir: path.join(ctx.argos.dir, 'caddy-trivial'), authDial: `127.0.0.1:${ctx.trivialAuth.port}` });
    try {
      const cookie = `theme=dark; argos_session=${ctx.alice.token}`;
      const headers = { Host: `${ctx.hosts.app}:PORT`, Accept: 'text/html,application/xhtml+xml', Cookie: cookie, 'User-Agent': 'Mozilla/5.0 (argos-bench)' };
      for (const c of [withArgos, withTrivial]) {
        const r = await rawRequest({
          port: c.port,
          host: `${ctx.hosts.app}:${c.port}`,
          path: '/dashboard?tab=1',
          headers: { Accept: 'text/html', Cookie: cookie },
        });
        if (r.status !== 200 || r.body !== 'ok\n') throw new Error(`Caddy on ${c.port} did not pass the visitor through: ${r.status} ${r.body.slice(0, 200)}`);
      }
      const load = (port: number, seconds: number) =>
        runWrk({
          url: `http://127.0.0.1:${port}`,
          connections: ctx.load.connections,
          threads: ctx.load.threads,
          durationS: seconds,
          script: staticScript({ path: '/dashboard?tab=1', headers: { ...headers, Host: `${ctx.hosts.app}:${port}` } }),
        });
      // CPU per request of Caddy and of the auth server in each variant (µs, from /proc): on 2 cores they share the CPU.
      const cpu: Record<string, number[]> = { caddy_argos: [], caddy_trivial: [], gatekeeper: [], trivial: [] };
      const variant = (name: string, port: number, caddyPid: number, authPid: number, key: 'argos' | 'trivial') => ({
        name,
        warmup: () => load(port, t.warmupS),
        run: async () => {
          const c0 = cpuSeconds(caddyPid) ?? 0;
          const a0 = cpuSeconds(authPid) ?? 0;
          const r = await load(port, t.measureS);
          cpu[`caddy_${key}`]!.push((((cpuSeconds(caddyPid) ?? 0) - c0) * 1e6) / r.requests);
          cpu[key === 'argos' ? 'gatekeeper' : 'trivial']!.push((((cpuSeconds(authPid) ?? 0) - a0) * 1e6) / r.requests);
          assertClean(name, r);
          ctx.expectStatus(name, r, 'success');
          return r;
        },
      });
      const rounds = await alternate<WrkResult>(
        t.rounds,
        variant('caddy+argos', withArgos.port, withArgos.pid, ctx.gk.pid, 'argos'),
        variant('caddy+trivial', withTrivial.port, withTrivial.pid, ctx.trivialAuth.pid, 'trivial'),
        (v, i, r) =>
          ctx.log(
            `  round ${i + 1} ${v === 'A' ? 'caddy+argos  ' : 'caddy+trivial'} ${r.rps.toFixed(0)} req/s, p50 ${r.latency.p50.toFixed(2)} ms, p99 ${r.latency.p99.toFixed(2)} ms; ` +
              `CPU/request: Caddy ${cpu[v === 'A' ? 'caddy_argos' : 'caddy_trivial']!.at(-1)!.toFixed(0)} µs, auth ${cpu[v === 'A' ? 'gatekeeper' : 'trivial']!.at(-1)!.toFixed(0)} µs`,
          ),
      );
      const argos = median(rounds.a.map((r) => r.rps));
      const trivial = median(rounds.b.map((r) => r.rps));
      const ratio = argos / trivial;
      const p99a = median(rounds.a.map((r) => r.latency.p99));
      const p99b = median(rounds.b.map((r) => r.latency.p99));
      const pairs = rounds.a.map((r, i) => round(r.rps / rounds.b[i]!.rps, 3));
      return {
        id: 2,
        name: 'Through Caddy 2.6 (generated config): forward_auth to Argos vs forward_auth to trivial node:http, same upstream',
        metric: `throughput req/s (median of ${t.rounds} rounds, ${t.measureS}s, ${ctx.load.connections} conns); p99 ${round(p99a)} ms vs ${round(p99b)} ms`,
        value: Math.round(argos),
        baseline: Math.round(trivial),
        ratio: round(ratio, 3),
        target: 'ratio >= 0.9',
        pass: ratio >= 0.9,
        details: {
          rounds: rounds.order,
          argos: rounds.a.map(summary),
          trivial: rounds.b.map(summary),
          per_round_ratio: pairs,
          cpu_us_per_request_median: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(median(v), 1)])),
        },
      };
    } finally {
      await withArgos.stop();
      await withTrivial.stop();
    }
  },
};
