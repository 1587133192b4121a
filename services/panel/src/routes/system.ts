/** GET /system (Caddy status, runtime configuration), POST /caddy/apply, GET /caddy/preview. */
import Router from '@koa/router';
import type { PanelState, Web } from '../web.ts';

export function systemRoutes(web: Web): Router<PanelState> {
  const { config } = web.deps;
  const r = new Router<PanelState>();

  r.get('/system', async (ctx) => {
    const caddy = await web.caddyStatus();
    web.render(ctx, 'system', {
      pageTitle: 'System',
      section: 'system',
      caddy,
      runtime: [
        ['Mode', config.mode],
        ['Portal URL', config.portalUrl.origin],
        ['Panel domain', config.panelDomain ?? '—'],
        ['Panel listens on', `${config.panelListen.host}:${config.panelListen.port}`],
        ['Gatekeeper listens on', `${config.gatekeeperListen.host}:${config.gatekeeperListen.port}`],
        ['Caddy admin API', config.caddyAdmin ?? 'managed by Argos (socket in the data directory)'],
        ['Trusted proxies', config.trustedProxies.map((c) => c.text).join(', ')],
      ],
    });
  });

  r.post('/caddy/apply', async (ctx) => {
    const result = await web.applyCaddy(web.actor(ctx));
    if (result.ok) web.flash(ctx, 'ok', 'Caddy configuration applied.');
    else web.flash(ctx, 'error', `Caddy refused the configuration: ${result.error}. The previous configuration keeps running.`);
    web.seeOther(ctx, '/system');
  });

  r.get('/caddy/preview', async (ctx) => {
    let json: string | null = null;
    let error: string | null = null;
    try {
      json = JSON.stringify(await web.deps.caddy.preview(), null, 2);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    web.render(ctx, 'caddy-preview', { pageTitle: 'Generated Caddy configuration', section: 'system', json, error });
  });

  return r;
}
