/**
 * Scenario 3: anonymous flood. A freshly started gatekeeper gets 1,000,000 requests, each from a distinct client
 * address (half IPv4, half IPv6 each in its own /64) in X-Forwarded-For from the trusted proxy, to a one_factor host
 * with a country deny-list and a rate limit: every request runs the whole pipeline (CrowdSec and regulation lookups,
 * a country lookup and cache entry, a new rate bucket, the 401) and is written to the decision log.
 * Resident memory (VmRSS of the gatekeeper) is sampled every 500 ms. Target: growth ≤ 64 MB (peak − before), and
 * flat once the bounded caches are full: ≤ 16 MB more over the second half of the flood (the country cache is full after
 * 2,000 clients; the rate-bucket table has a fixed size from the start).
 */
import type { Scenario } from '../lib/context.ts';
import { runWrk, staticScript, distinctClientsScript, assertClean } from '../lib/wrk.ts';
import { median, round } from '../lib/stats.ts';
import { sleep } from '../lib/proc.ts';

interface Sample {
  t: number;
  ips: number;
  rss: number;
}

export const scenario: Scenario = {
  id: 3,
  title: 'anonymous flood',
  async run(ctx) {
    const target = Number(process.env.BENCH_FLOOD_CLIENTS) || (ctx.quick ? 100_000 : 1_000_000);
    const gk = await ctx.restartGatekeeper();
    const anon = ctx.verifyHeaders({ host: ctx.hosts.flood, accept: 'application/json' });
    delete anon['X-Forwarded-For'];
    const url = `http://127.0.0.1:${gk.port}`;
    const conns = ctx.load.connections;
    const threads = ctx.load.threads;

    // Warm-up (excluded): the same path from a single client, so JIT and pools are settled before the baseline.
    await runWrk({
      url,
      connections: conns,
      threads,
      durationS: ctx.quick ? 2 : 4,
      script: staticScript({ path: '/verify', headers: { ...anon, 'X-Forwarded-For': '198.51.100.1' } }),
    });
    await sleep(1000);
    const before: number[] = [];
    for (let i = 0; i < 5; i++) {
      before.push(gk.rssMB() ?? NaN);
      await sleep(200);
    }
    const baseline = median(before);
    const heap = async () => ({
      heap_used_mb: round(((await gk.metric('argos_gatekeeper_nodejs_heap_size_used_bytes')) ?? 0) / 2 ** 20, 1),
      heap_total_mb: round(((await gk.metric('argos_gatekeeper_nodejs_heap_size_total_bytes')) ?? 0) / 2 ** 20, 1),
      external_mb: round(((await gk.metric('argos_gatekeeper_nodejs_external_memory_bytes')) ?? 0) / 2 ** 20, 1),
    });
    const heapBefore = await heap();
    ctx.log(`  resident before the flood: ${baseline.toFixed(1)} MB`);

    const samples: Sample[] = [];
    let done = 0;
    let logQueuePeak = 0;
    let chunkStart = Date.now();
    let chunkPlanned = 0;
    let estRate = 8000;
    const t0 = Date.now();
    const sampler = setInterval(() => {
      const rss = gk.rssMB();
      if (rss === null) return;
      // IPs sent so far, interpolated inside the running chunk.
      const frac = Math.min(1, (Date.now() - chunkStart) / (chunkPlanned * 1000 || 1));
      samples.push({ t: (Date.now() - t0) / 1000, ips: Math.round(done + frac * chunkPlanned * estRate), rss });
      // The decision log's backlog while the load runs (after a chunk it drains at once): entries that wait are promoted.
      void gk.metric('argos_decision_log_queue').then((q) => (logQueuePeak = Math.max(logQueuePeak, q ?? 0)));
    }, 500);
    let requests = 0;
    let non401 = 0;
    const script = distinctClientsScript({ path: '/verify', headers: anon });
    try {
      // Bounded loop: wrk runs in chunks (≤ 15 s each) until the target number of distinct addresses was sent.
      for (let chunk = 0; done < target && chunk < 100; chunk++) {
        chunkPlanned = Math.max(2, Math.min(15, Math.ceil((target - done) / estRate) + 1));
        chunkStart = Date.now();
        const r = await runWrk({ url, connections: conns, threads, durationS: chunkPlanned, script, args: [String(done), String(threads)] });
        assertClean('flood', r);
        done += r.sent;
        requests += r.requests;
        non401 += r.requests - r.errors.status; // 2xx/3xx would mean an anonymous client got through
        estRate = Math.max(1000, r.sent / r.durationS);
        const h = await heap();
        const buckets = (await gk.metric('argos_rate_buckets')) ?? 0;
        ctx.log(
          `  ${done.toLocaleString('en')} distinct clients sent (${r.rps.toFixed(0)} req/s), resident ${gk.rssMB()?.toFixed(1)} MB, V8 heap ${h.heap_used_mb}/${h.heap_total_mb} MB, rate buckets in debt ${buckets}, decision-log queue peak ${logQueuePeak}`,
        );
      }
    } finally {
      clearInterval(sampler);
    }
    await sleep(1500);
    const after = gk.rssMB() ?? NaN;
    samples.push({ t: (Date.now() - t0) / 1000, ips: done, rss: after });
    const peak = Math.max(...samples.map((s) => s.rss));
    const growth = peak - baseline;
    // The second half of the flood: every bounded cache is full by then.
    const tail = samples.filter((s) => s.ips >= done / 2);
    const atFill = tail.length ? tail[0]!.rss : after;
    const afterFill = Math.max(...tail.map((s) => s.rss)) - atFill;
    const flat = afterFill <= 16;
    const health = await gk.health();
    const gauges = {
      rate_buckets: await gk.metric('argos_rate_buckets'),
      geo_cache: await gk.metric('argos_geo_cache_size'),
      regulation_clients: await gk.metric('argos_regulation_clients'),
      session_cache: await gk.metric('argos_session_cache_size'),
      decision_log_queue: await gk.metric('argos_decision_log_queue'),
      decision_log_dropped_total: await gk.metric('argos_decision_log_dropped_total'),
    };
    if (non401 > 0) throw new Error(`flood: ${non401} anonymous requests were answered 2xx/3xx`);
    return {
      id: 3,
      name: `Anonymous flood: ${done.toLocaleString('en')} distinct client IPs (v4 + v6 /64s) via X-Forwarded-For straight to /verify`,
      metric: `resident memory growth MB (peak during the flood − before; baseline = before, MB; ratio = peak/before); +${round(afterFill, 1)} MB over the second half`,
      value: round(growth, 1),
      baseline: round(baseline, 1),
      ratio: round(peak / baseline, 3),
      target: 'growth <= 64 MB; flat over the second half (<= +16 MB)',
      pass: growth <= 64 && flat,
      details: {
        distinct_clients: done,
        requests_completed: requests,
        v8: { before: heapBefore, after: await heap() },
        rss_mb: {
          before: round(baseline, 1),
          peak: round(peak, 1),
          after: round(after, 1),
          at_half: round(atFill, 1),
          growth_over_second_half: round(afterFill, 1),
        },
        gauges,
        crowdsec: health.crowdsec,
        samples: samples.filter((_, i) => i % 4 === 0 || i === samples.length - 1).map((s) => [round(s.t, 1), s.ips, round(s.rss, 1)]),
        samples_format: '[seconds, distinct clients sent (interpolated), VmRSS MB]',
      },
    };
  },
};
