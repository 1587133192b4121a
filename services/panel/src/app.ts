/**
 * The operator panel: server-rendered pages for hosts, users, audit, settings and Caddy, plus a JSON API
 * under /api/v1 with the same session authentication. This file only assembles the middleware chain;
 * every route is a short parse → command → presenter → view (or JSON) handler in routes/.
 *
 * Chain: errors + security headers → static → body → session → public login routes → operator gate
 * (401 JSON / 302 to /login) → CSRF → must-change-password gate → account, pages, API → 404.
 */
import Koa from 'koa';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import type { Config } from '@argos/shared/config';
import type { Database } from '@argos/shared/db/sqlite';
import type { Vault } from '@argos/shared/crypto';
import type { Regulator } from '@argos/shared/regulation';
import type { Logger } from '@argos/shared/log';
import type { Actor } from '@argos/shared/audit';
import { CommandError } from '@argos/shared/commands/hosts';
import { securityHeaders } from '@argos/shared/http';
import { normalizeHost } from '@argos/shared/hostname';
import { Web, CSS, isApi, type PanelState } from './web.ts';
import { accountRoutes, csrfGuard, loadSession, loginRoutes, passwordChangeGate, reauthGate, requireOperator } from './auth.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { hostRoutes } from './routes/hosts.ts';
import { userRoutes } from './routes/users.ts';
import { auditRoutes } from './routes/audit.ts';
import { settingsRoutes } from './routes/settings.ts';
import { oidcSettingsRoutes } from './routes/oidc.ts';
import { ssoRoutes } from './sso.ts';
import { systemRoutes } from './routes/system.ts';
import { apiRoutes } from './routes/api.ts';
import { backupRoutes, UPLOAD_PATHS } from './routes/backups.ts';
import { secretRoutes } from './routes/secrets.ts';
import { uploadFields } from './multipart.ts';
import { accessRoutes } from './routes/access.ts';
import { userSecurityRoutes } from './routes/user-security.ts';
import { notificationRoutes } from './routes/notifications.ts';
import { trafficRoutes } from './routes/traffic.ts';
import { metricsRoutes } from './routes/metrics.ts';
import type { Observability } from './observability.ts';

export type CaddyApplyResult = { ok: true } | { ok: false; error: string };

export interface CaddyStatus {
  /** How Argos reaches Caddy, when the integration knows: its own process, an external admin API, or none installed. */
  mode?: 'managed' | 'external' | 'absent';
  reachable: boolean;
  inSync: boolean | null;
  lastError: string | null;
  lastAppliedAt: number | null;
}

/** The Caddy integration, injected (shared/src/caddy/sync.ts in production): push the generated config, report its state, show it. */
export interface CaddySync {
  apply(actor: Actor): Promise<CaddyApplyResult>;
  status(): Promise<CaddyStatus>;
  preview(): Promise<object>;
}

export interface PanelDeps {
  config: Config;
  db: Database;
  vault: Vault;
  regulator: Regulator;
  log: Logger;
  caddy: CaddySync;
  /** Notifier, traffic ingestion and metrics (main.ts); absent in in-process tests. */
  observability?: Observability;
  /** Injected clock (tests). */
  now?: () => number;
}

/** Builds the panel's Koa app. */
export function createPanel(deps: PanelDeps): Koa<PanelState> {
  const web = new Web(deps);
  const app = new Koa<PanelState>();
  app.proxy = false; // client IPs come from requestIp() with the configured trusted proxies only
  const headers = securityHeaders({ hsts: deps.config.mode === 'behind_caddy' });

  const panelHost = deps.config.mode === 'behind_caddy' && deps.config.panelDomain ? normalizeHost(deps.config.panelDomain) : null;
  app.use(async (ctx, next) => {
    ctx.set(headers);
    // Behind Caddy, only the panel's own host name is served (a DNS-rebinding page cannot borrow the session).
    if (panelHost && ctx.path !== '/healthz' && normalizeHost(ctx.get('host')) !== panelHost) {
      ctx.status = 421;
      ctx.body = 'Misdirected request';
      return;
    }
    try {
      await next();
    } catch (err) {
      web.renderError(ctx, err);
    }
  });

  const open = new Router<PanelState>();
  open.get('/static/panel.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = CSS;
  });
  open.get('/healthz', async (ctx) => {
    await deps.db.get('SELECT 1');
    ctx.body = { status: 'ok', database: 'ok', ...deps.observability?.health() };
  });
  app.use(open.routes());
  app.use(metricsRoutes(web).routes());

  app.use(bodyParser({ enableTypes: ['form', 'json'], formLimit: '64kb', jsonLimit: '64kb' }));
  app.use(loadSession(web));
  app.use(loginRoutes(web).routes());
  app.use(ssoRoutes(web).routes()); // public SSO sign-in (404 while SSO is off); its POST /logout wraps the one below
  app.use(requireOperator(web));
  app.use(uploadFields(UPLOAD_PATHS)); // the backup upload's form fields (CSRF token first), before the CSRF guard; the file is read by the route
  app.use(csrfGuard(web));
  app.use(passwordChangeGate(web));
  app.use(reauthGate(web));
  for (const router of [
    accountRoutes(web),
    dashboardRoutes(web),
    hostRoutes(web),
    userRoutes(web),
    userSecurityRoutes(web),
    accessRoutes(web),
    auditRoutes(web),
    oidcSettingsRoutes(web),
    settingsRoutes(web),
    systemRoutes(web),
    secretRoutes(web),
    backupRoutes(web),
    notificationRoutes(web),
    trafficRoutes(web),
    apiRoutes(web),
  ]) {
    app.use(router.routes());
  }
  app.use((ctx) => {
    if (isApi(ctx)) throw new CommandError('not found', 404);
    web.render(ctx, 'message', { pageTitle: 'Not found', heading: 'Not found', text: 'There is nothing here.', link: { href: '/', label: 'Dashboard' } }, 404);
  });
  return app;
}
