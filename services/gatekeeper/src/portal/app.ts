/**
 * The visitor login portal (served by the gatekeeper, published through Caddy as its own host):
 * sign-in with password and second factor, sign-out, the account page, and TOTP enrollment.
 * This file only assembles middleware and route files; helpers live in web.ts.
 */
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import Koa from 'koa';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import { securityHeaders } from '@argos/shared/http';
import { PortalWeb, type PortalDeps } from './web.ts';
import { loginRoutes } from './login.ts';
import { accountRoutes } from './account.ts';
import { oidcRoutes } from './oidc.ts';

export type { PortalDeps } from './web.ts';

const CSS = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'static', 'portal.css'));

export function createPortal(deps: PortalDeps): Koa {
  const web = new PortalWeb(deps);
  const app = new Koa();
  const router = new Router();

  app.use(async (ctx, next) => {
    ctx.set(securityHeaders({ hsts: web.secure }));
    try {
      await next();
    } catch (err) {
      deps.log.error({ err, path: ctx.path }, 'portal error');
      web.message(ctx, 500, 'Something went wrong', 'Please try again in a moment.');
    }
  });
  app.use(bodyParser({ enableTypes: ['form'], formLimit: '16kb' }));

  router.get('/static/portal.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = CSS;
  });
  router.get('/', async (ctx) => {
    const cur = await web.current(ctx);
    if (!cur) return ctx.redirect('/login');
    ctx.redirect('/account');
  });
  oidcRoutes(router, web); // before loginRoutes: its POST /logout wraps the portal's own (RP-initiated logout)
  loginRoutes(router, web);
  accountRoutes(router, web);

  app.use(router.routes());
  app.use(router.allowedMethods());
  app.use((ctx) => web.message(ctx, 404, 'Not found', 'There is nothing here.', { href: '/', label: 'Portal home' }));
  return app;
}
