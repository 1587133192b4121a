/**
 * Scenario 1: /verify alone. wrk straight at the gatekeeper as Caddy's forward_auth would call it (trusted proxy
 * 127.0.0.1, the visitor's public address in X-Forwarded-For), with a logged-in visitor's session cookie on a
 * one_factor host that has a country allow-list and a rate limit, CrowdSec decisions loaded, the decision log on.
 * Baseline: a trivial node:http server answering 200 with the same headers. Target: throughput ratio ≥ 0.6.
 */
import type { Scenario } from '../lib/context.ts';
import { runWrk, staticScript, assertClean, type WrkResult } from '../lib/wrk.ts';
import { alternate, median, round } from '../lib/stats.ts';
import { cpuSeconds } from '../lib/proc.ts';

export const scenario: Scenario = {
  id: 1,
  title: '/verify alone',
  async run(ctx) {
    const t = ctx.timing('throughput');
    const headers = ctx.verifyHeaders({ host: ctx.hosts.app, token: ctx.alice.token });
    const script = staticScript({ path: '/verify', headers });
    const load = (port: number, seconds: number) =>
      runWrk({ url: `http://127.0.0.1:${port}`, connections: ctx.load.connections, threads: ctx.load.threads, durationS: seconds, script });
    // CPU time of the server process per request: unlike req/s, it hardly depends on what else the machine runs.
    const cpuUs: Record<string, number[]> = { argos: [], trivial: [] };
    const variant = (name: 'argos' | 'trivial', port: number, pid: number) => ({
      name,
      warmup: () => load(port, t.warmupS),
      run: async () => {
        const c0 = cpuSeconds(pid) ?? 0;
        const r = await load(port, t.measureS);
        cpuUs[name]!.push((((cpuSeconds(pid) ?? 0) - c0) * 1e6) / r.requests);
        assertClean(name, r);
        ctx.expectStatus(name, r, 'success');
        return r;
      },
    });
    const written0 = (await ctx.gk.metric('argos_decisions_total')) ?? 0;
    const rounds = await alternate<WrkResult>(
      t.rounds,
      variant('argos', ctx.gk.port, ctx.gk.pid),
      variant('trivial', ctx.trivialAuth.port, ctx.trivialAuth.pid),
      (v, i, r) =>
        ctx.log(
          `  round ${i + 1} ${v === 'A' ? 'argos  ' : 'trivial'} ${r.rps.toFixed(0)} req/s, p50 ${r.latency.p50.toFixed(2)} ms, p99 ${r.latency.p99.toFixed(2)} ms, ` +
            `${cpuUs[v === 'A' ? 'argos' : 'trivial']!.at(-1)!.toFixed(0)} µs CPU/request`,
        ),
    );
    const argos = median(rounds.a.map((r) => r.rps));
    const trivial = median(rounds.b.map((r) => r.rps));
    const p99a = median(rounds.a.map((r) => r.latency.p99));
    const p99b = median(rounds.b.map((r) => r.latency.p99));
    const ratio = argos / trivial;
    const dropped = await ctx.gk.metric('argos_decision_log_dropped_total');
    return {
      id: 1,
      name: `/verify alone: session cookie, one_factor host, country allow-list, rate limit, ${ctx.crowdsec.note}, decision log on; vs trivial node:http 200`,
      metric: `throughput req/s (median of ${t.rounds} rounds, ${t.measureS}s, ${ctx.load.connections} conns); p99 ${round(p99a)} ms vs ${round(p99b)} ms`,
      value: Math.round(argos),
      baseline: Math.round(trivial),
      ratio: round(ratio, 3),
      target: 'ratio >= 0.6',
      pass: ratio >= 0.6,
      details: {
        rounds: rounds.order,
        argos: rounds.a.map(summary),
        trivial: rounds.b.map(summary),
        p99_ms: { argos: round(p99a, 3), trivial: round(p99b, 3) },
        server_cpu_us_per_request: { argos: round(median(cpuUs.argos!), 1), trivial: round(median(cpuUs.trivial!), 1) },
        decisions_counted: ((await ctx.gk.metric('argos_decisions_total')) ?? 0) - written0,
        decision_log_dropped_total: dropped,
      },
    };
  },
};

export function summary(r: WrkResult) {
  return {
    rps: Math.round(r.rps),
    requests: r.requests,
    p50_ms: round(r.latency.p50, 3),
    p99_ms: round(r.latency.p99, 3),
    max_ms: round(r.latency.max, 2),
    non2xx: r.errors.status,
  };
}
