/** GET /traffic: requests per host (status classes, latency, bytes), top paths and clients, ingestion state, log disk use. */
import Router from '@koa/router';
import { loadSettings, formatSetting } from '@argos/shared/settings';
import { Overview, parseHost, parseRange, RANGES } from '../traffic/overview.ts';
import type { PanelState, Web } from '../web.ts';

export function trafficRoutes(web: Web): Router<PanelState> {
  const { db, config } = web.deps;
  const r = new Router<PanelState>();
  const overview = new Overview(db, web.deps.observability ?? null);

  r.get('/traffic', async (ctx) => {
    const now = web.now();
    const range = parseRange(ctx.query.range);
    const host = parseHost(ctx.query.host);
    const [traffic, tables, settings] = await Promise.all([overview.traffic(range, host, now), overview.logTables(now), loadSettings(db)]);
    const ing = web.deps.observability?.ingestor ?? null;
    web.render(ctx, 'traffic', {
      pageTitle: 'Traffic',
      section: 'traffic',
      range,
      ranges: Object.entries(RANGES).map(([key, v]) => ({ key, label: v.label })),
      host,
      traffic,
      tables,
      tablesTotal: tables.reduce((a, t) => a + t.bytes, 0),
      retention: { traffic: formatSetting('traffic.retention', settings['traffic.retention']), decisions: formatSetting('decision_log.retention', settings['decision_log.retention']) },
      ingest: ing
        ? { running: true, file: ing.file, position: ing.position, lines: ing.lines, ingested: ing.ingested, dropped: ing.dropped, skipped: ing.skipped, rotations: ing.rotations, depth: ing.depth, max: ing.opts.queueMax, lastReadAt: ing.lastReadAt, lastError: ing.lastError }
        : { running: false, file: config.caddyAccessLog },
    });
  });

  return r;
}
