/**
 * Prometheus metrics of the gatekeeper (prom-client registry): decisions by verdict and reason, /verify latency,
 * cache and queue sizes. /verify only adds to plain numbers (a nested Map and a bucket array); prom-client reads
 * them when /metrics is scraped. Its own per-observation path (label hashing, validation, a closure per call)
 * cost more than the rest of the bookkeeping on a request.
 */
import client from 'prom-client';

const LATENCY_BOUNDS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1] as const;

export class Metrics {
  readonly registry = new client.Registry();
  /** verdict → reason → decisions since start. */
  private readonly counts = new Map<string, Map<string, number>>();
  /** Per-bucket (not cumulative) latency counts; the last slot is +Inf. */
  private readonly buckets = new Float64Array(LATENCY_BOUNDS_S.length + 1);
  private latencySumS = 0;

  constructor(gauges: Record<string, { help: string; get: () => number }>) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'argos_gatekeeper_' });
    const counts = this.counts;
    new client.Counter({
      name: 'argos_decisions_total',
      help: 'Forward-auth decisions by verdict and reason',
      labelNames: ['verdict', 'reason'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [verdict, reasons] of counts) for (const [reason, n] of reasons) this.inc({ verdict, reason }, n);
      },
    });
    this.registry.registerMetric(this.latencyMetric() as unknown as client.Metric);
    for (const [name, g] of Object.entries(gauges)) {
      new client.Gauge({ name, help: g.help, registers: [this.registry], collect() { this.set(g.get()); } });
    }
  }

  /** Counts a decision and returns its latency in microseconds (`started`: performance.now() at arrival). */
  decision(verdict: string, reason: string, started: number): number {
    const us = Math.round((performance.now() - started) * 1000);
    let reasons = this.counts.get(verdict);
    if (!reasons) this.counts.set(verdict, (reasons = new Map()));
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    const s = us / 1e6;
    let i = 0;
    while (i < LATENCY_BOUNDS_S.length && s > LATENCY_BOUNDS_S[i]!) i++;
    this.buckets[i]!++;
    this.latencySumS += s;
    return us;
  }

  /** The latency histogram in prom-client's exposition shape (cumulative buckets, sum, count). */
  private latencyMetric() {
    const name = 'argos_verify_duration_seconds';
    const buckets = this.buckets;
    const sum = () => this.latencySumS;
    return {
      name,
      help: 'Time spent answering /verify',
      type: 'histogram',
      aggregator: 'sum',
      get() {
        const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
        let cumulative = 0;
        LATENCY_BOUNDS_S.forEach((le, i) => {
          cumulative += buckets[i]!;
          values.push({ labels: { le }, value: cumulative, metricName: `${name}_bucket` });
        });
        cumulative += buckets[LATENCY_BOUNDS_S.length]!;
        values.push({ labels: { le: '+Inf' }, value: cumulative, metricName: `${name}_bucket` });
        values.push({ labels: {}, value: sum(), metricName: `${name}_sum` });
        values.push({ labels: {}, value: cumulative, metricName: `${name}_count` });
        return { name, help: 'Time spent answering /verify', type: 'histogram', aggregator: 'sum', values };
      },
    };
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
