/**
 * Scenario 4: cold path. N portal sessions are created in the database beforehand (as logins would, but by another
 * process, so none is in the gatekeeper's session cache). A sequential client on one keep-alive connection then
 * alternates a request with a never-seen session (cache miss → one SQLite read) and a request with the cached
 * visitor session, pair by pair, alternating which goes first. Added latency = median(cold) − median(cached).
 * Target ≤ 1 ms.
 */
import http from 'node:http';
import type { Scenario } from '../lib/context.ts';
import { median, percentile, round } from '../lib/stats.ts';

function timedGet(agent: http.Agent, port: number, headers: Record<string, string>): Promise<{ ms: number; status: number }> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const req = http.request({ host: '127.0.0.1', port, path: '/verify', method: 'GET', headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - t) / 1e6, status: res.statusCode ?? 0 }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export const scenario: Scenario = {
  id: 4,
  title: 'cold path',
  async run(ctx) {
    const n = ctx.quick ? 400 : 2000;
    const tokens = await ctx.argos.sessions(ctx.alice.id, n);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const port = ctx.gk.port;
    const warmHeaders = ctx.verifyHeaders({ host: ctx.hosts.app, token: ctx.alice.token });
    const cacheBefore = (await ctx.gk.metric('argos_session_cache_size')) ?? 0;
    try {
      // Warm-up (excluded): the connection and the cached path.
      for (let i = 0; i < 300; i++) await timedGet(agent, port, warmHeaders);
      const cold: number[] = [];
      const warm: number[] = [];
      for (let i = 0; i < n; i++) {
        const coldHeaders = ctx.verifyHeaders({ host: ctx.hosts.app, token: tokens[i]! });
        const pair = i % 2 === 0 ? [true, false] : [false, true];
        for (const isCold of pair) {
          const r = await timedGet(agent, port, isCold ? coldHeaders : warmHeaders);
          if (r.status !== 200) throw new Error(`cold path: /verify answered ${r.status} for a ${isCold ? 'fresh' : 'cached'} session`);
          (isCold ? cold : warm).push(r.ms);
        }
      }
      const cacheAfter = (await ctx.gk.metric('argos_session_cache_size')) ?? 0;
      const mc = median(cold);
      const mw = median(warm);
      const added = mc - mw;
      ctx.log(`  cold median ${mc.toFixed(3)} ms, cached median ${mw.toFixed(3)} ms, added ${added.toFixed(3)} ms (${n} pairs)`);
      return {
        id: 4,
        name: `Cold path: session not in the gatekeeper cache (one SQLite read) vs cached session; ${n} sequential pairs`,
        metric: 'median added latency ms (cold − cached; baseline = cached median ms, ratio = cold/cached)',
        value: round(added, 3),
        baseline: round(mw, 3),
        ratio: round(mc / mw, 3),
        target: 'added <= 1 ms',
        pass: added <= 1,
        details: {
          pairs: n,
          cold_ms: { p50: round(mc, 3), p90: round(percentile(cold, 90), 3), p99: round(percentile(cold, 99), 3) },
          cached_ms: { p50: round(mw, 3), p90: round(percentile(warm, 90), 3), p99: round(percentile(warm, 99), 3) },
          session_cache: { before: cacheBefore, after: cacheAfter },
        },
      };
    } finally {
      agent.destroy();
    }
  },
};
