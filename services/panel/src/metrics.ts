/**
 * The panel's Prometheus metrics (prom-client): notification deliveries by channel and outcome, the notification
 * queue, traffic ingestion (lines, rows, drops), the writer queue, plus Node's default process metrics.
 */
import client from 'prom-client';
import type { DeliveryOutcome } from '@argos/shared/repos/notifications';

/** A counter whose value is read from a running total at scrape time (it only ever grows). */
function totalCounter(registry: client.Registry, name: string, help: string, get: () => number): void {
  let reported = 0;
  new client.Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const v = get();
      if (v > reported) this.inc(v - reported);
      reported = Math.max(reported, v);
    },
  });
}

export interface PanelMetricSources {
  notifyDepth: () => number;
  notifyDropped: () => number;
  trafficLines: () => number;
  trafficIngested: () => number;
  trafficDropped: () => number;
  trafficSkipped: () => number;
  trafficDepth: () => number;
  writeQueue: () => number;
}

export class PanelMetrics {
  readonly registry = new client.Registry();
  private readonly deliveries = new client.Counter({
    name: 'argos_notifications_total',
    help: 'Notification deliveries by channel and outcome (sent, failed, throttled, dropped)',
    labelNames: ['channel', 'outcome'] as const,
    registers: [this.registry],
  });

  constructor(src: PanelMetricSources) {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'argos_panel_' });
    const gauge = (name: string, help: string, get: () => number) =>
      new client.Gauge({ name, help, registers: [this.registry], collect() { this.set(get()); } });
    gauge('argos_notify_queue_depth', 'Notifications waiting or being delivered', src.notifyDepth);
    totalCounter(this.registry, 'argos_notify_dropped_total', 'Notifications dropped because the queue was full', src.notifyDropped);
    totalCounter(this.registry, 'argos_traffic_lines_total', "Lines read from Caddy's access log", src.trafficLines);
    totalCounter(this.registry, 'argos_traffic_ingested_total', 'Access-log rows written to the database', src.trafficIngested);
    totalCounter(this.registry, 'argos_traffic_dropped_total', 'Access-log rows dropped because the ingestion channel was full', src.trafficDropped);
    totalCounter(this.registry, 'argos_traffic_skipped_total', 'Access-log lines that were not access entries', src.trafficSkipped);
    gauge('argos_traffic_queue_depth', 'Access-log rows waiting to be written', src.trafficDepth);
    gauge('argos_panel_write_queue_depth', 'Writes waiting in the panel process', src.writeQueue);
    // Every label pair exists from the start, so rate() works from the first delivery.
    for (const channel of ['smtp', 'webhook']) for (const outcome of ['sent', 'failed', 'throttled', 'dropped']) this.deliveries.inc({ channel, outcome }, 0);
  }

  delivery(channel: string, outcome: DeliveryOutcome): void {
    this.deliveries.inc({ channel, outcome });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
