/**
 * Scenario 5: writes under load. Scenario 1's load (decision log recording every decision) with, in another process,
 * panel-side writes at 200/s (alternately an audited mutation and a host edit through the shared command, see
 * lib/writer.ts), versus the same load without writes, alternating. Target: throughput drop ≤ 20% (ratio ≥ 0.8).
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Scenario } from '../lib/context.ts';
import { runWrk, staticScript, assertClean, type WrkResult } from '../lib/wrk.ts';
import { alternate, median, round } from '../lib/stats.ts';
import { BENCH_DIR, TSX } from '../lib/argos.ts';
import { summary } from './1-verify.ts';
import { cpuSeconds } from '../lib/proc.ts';

interface WriterReport {
  writes: number;
  failed: number;
  lastError: string | null;
  seconds: number;
  late: number;
  maxMs: number;
}

function ask<T>(child: ChildProcess, msg: object, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: Record<string, unknown>) => {
      if (key in m) {
        child.off('message', onMsg);
        resolve(m as T);
      }
    };
    child.on('message', onMsg);
    child.once('exit', (c) => reject(new Error(`writer exited ${c}`)));
    child.send(msg);
  });
}

export const scenario: Scenario = {
  id: 5,
  title: 'writes under load',
  async run(ctx) {
    const rate = 200;
    const t = ctx.timing('writes');
    const child = fork(path.join(BENCH_DIR, 'lib/writer.ts'), [], {
      execArgv: ['--import', TSX],
      env: {
        ...process.env,
        ARGOS_DATA_DIR: ctx.argos.env.ARGOS_DATA_DIR!,
        ARGOS_MASTER_KEY: ctx.argos.env.ARGOS_MASTER_KEY!,
        BENCH_EDIT_HOST: ctx.hosts.edit,
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (c) => reject(new Error(`writer exited ${c} before it was ready`)));
      });
      const script = staticScript({ path: '/verify', headers: ctx.verifyHeaders({ host: ctx.hosts.app, token: ctx.alice.token }) });
      const load = (seconds: number) =>
        runWrk({ url: `http://127.0.0.1:${ctx.gk.port}`, connections: ctx.load.connections, threads: ctx.load.threads, durationS: seconds, script });
      const reports: WriterReport[] = [];
      // Where the CPU went: gatekeeper µs per request, and the writer process's own CPU (cores) while it ran.
      const gkUs: Record<'with' | 'without', number[]> = { with: [], without: [] };
      const writerCores: number[] = [];
      const measured = async (key: 'with' | 'without') => {
        const g0 = cpuSeconds(ctx.gk.pid) ?? 0;
        const w0 = cpuSeconds(child.pid!) ?? 0;
        const r = await load(t.measureS);
        gkUs[key].push((((cpuSeconds(ctx.gk.pid) ?? 0) - g0) * 1e6) / r.requests);
        if (key === 'with') writerCores.push(((cpuSeconds(child.pid!) ?? 0) - w0) / r.durationS);
        return r;
      };
      const dropped0 = (await ctx.gk.metric('argos_decision_log_dropped_total')) ?? 0;
      const rounds = await alternate<WrkResult>(
        t.rounds,
        {
          name: 'with writes',
          warmup: async () => {
            await ask(child, { cmd: 'start', rate }, 'started');
            await load(t.warmupS);
          },
          run: async () => {
            const r = await measured('with');
            reports.push(await ask<WriterReport>(child, { cmd: 'stop' }, 'writes'));
            assertClean('with writes', r);
            ctx.expectStatus('with writes', r, 'success');
            return r;
          },
        },
        {
          name: 'without writes',
          warmup: () => load(t.warmupS),
          run: async () => {
            const r = await measured('without');
            assertClean('without writes', r);
            ctx.expectStatus('without writes', r, 'success');
            return r;
          },
        },
        (v, i, r) =>
          ctx.log(
            `  round ${i + 1} ${v === 'A' ? 'with writes   ' : 'without writes'} ${r.rps.toFixed(0)} req/s, p99 ${r.latency.p99.toFixed(2)} ms, gatekeeper ${gkUs[v === 'A' ? 'with' : 'without'].at(-1)!.toFixed(0)} µs CPU/req${v === 'A' ? `, writer ${writerCores.at(-1)!.toFixed(2)} cores, ${(reports.at(-1)!.writes / reports.at(-1)!.seconds).toFixed(0)}/s, ${reports.at(-1)!.failed} failed, slowest ${reports.at(-1)!.maxMs.toFixed(0)} ms` : ''}`,
          ),
      );
      const withW = median(rounds.a.map((r) => r.rps));
      const without = median(rounds.b.map((r) => r.rps));
      const ratio = withW / without;
      const writeRate = median(reports.map((r) => r.writes / r.seconds));
      const dropped = ((await ctx.gk.metric('argos_decision_log_dropped_total')) ?? 0) - dropped0;
      const failed = reports.reduce((n, r) => n + r.failed, 0);
      const p99a = median(rounds.a.map((r) => r.latency.p99));
      const p99b = median(rounds.b.map((r) => r.latency.p99));
      return {
        id: 5,
        name: `Writes under load: scenario 1 load + panel-side writes at ${rate}/s from another process (audit entries + host edits), decision log recording every decision; vs no writes`,
        metric: `throughput req/s (median of ${t.rounds} rounds); writes achieved ${round(writeRate, 0)}/s, ${failed} failed; decision-log entries dropped ${dropped}; p99 ${round(p99a)} ms vs ${round(p99b)} ms`,
        value: Math.round(withW),
        baseline: Math.round(without),
        ratio: round(ratio, 3),
        target: 'ratio >= 0.8 (drop <= 20%); writes at >= 95% of 200/s, none failed, no decision-log drops',
        pass: ratio >= 0.8 && dropped === 0 && failed === 0 && writeRate >= rate * 0.95,
        details: {
          rounds: rounds.order,
          with_writes: rounds.a.map(summary),
          without_writes: rounds.b.map(summary),
          writer: reports.map((r) => ({
            writes: r.writes,
            failed: r.failed,
            last_error: r.lastError,
            per_s: round(r.writes / r.seconds, 1),
            late: r.late,
            max_ms: round(r.maxMs, 1),
          })),
          decision_log_dropped: dropped,
          gatekeeper_cpu_us_per_request: { with_writes: round(median(gkUs.with), 1), without_writes: round(median(gkUs.without), 1) },
          writer_process_cpu_cores: round(median(writerCores), 2),
        },
      };
    } finally {
      if (child.connected) child.send({ cmd: 'exit' });
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const k = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => (clearTimeout(k), resolve()));
      });
    }
  },
};
