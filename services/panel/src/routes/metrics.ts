/**
 * GET /metrics: the panel's Prometheus metrics, without signing in but only for clients in the setting
 * metrics.allowed_networks (default loopback). Behind Caddy the client is the X-Forwarded-For address from a
 * trusted proxy, so the internet never reads it through the panel's public host name.
 */
import Router from '@koa/router';
import type { PanelState, Web } from '../web.ts';

export function metricsRoutes(web: Web): Router<PanelState> {
  const r = new Router<PanelState>();
  r.get('/metrics', async (ctx) => {
    const obs = web.deps.observability;
    if (!obs) {
      ctx.status = 404;
      return;
    }
    if (!obs.metricsAllowed(web.clientIp(ctx))) {
      ctx.status = 403;
      ctx.type = 'text';
      ctx.body = 'forbidden: add your network to the setting metrics.allowed_networks\n';
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.type = obs.metrics.contentType;
    ctx.body = await obs.metrics.render();
  });
  return r;
}
