/** Prometheus metrics of the gatekeeper (prom-client): decisions by verdict and reason, /verify latency, cache and queue sizes. */
import client from 'prom-client';

export class Metrics {
  readonly registry = new client.Registry();
  private readonly decisions = new client.Counter({ name: 'argos_decisions_total', help: 'Forward-auth decisions by verdict and reason', labelNames: ['verdict', 'reason'] as const, registers: [this.registry] });
  private readonly latency = new client.Histogram({
    name: 'argos_verify_duration_seconds',
    help: 'Time spent answering /verify',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
    registers: [this.registry],
  });

  constructor(gauges: Record<string, { help: string; get: () => number }>) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'argos_gatekeeper_' });
    for (const [name, g] of Object.entries(gauges)) {
      new client.Gauge({ name, help: g.help, registers: [this.registry], collect() { this.set(g.get()); } });
    }
  }

  /** Counts a decision and returns its latency in microseconds. */
  decision(verdict: string, reason: string, started: bigint): number {
    const us = Number((process.hrtime.bigint() - started) / 1000n);
    this.decisions.inc({ verdict, reason });
    this.latency.observe(us / 1e6);
    return us;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
