/** GET /: counts, traffic and decision charts, top countries and denied clients, dependency health, the last audit entries. */
import Router from '@koa/router';
import { listAudit } from '@argos/shared/audit';
import { countHosts } from '@argos/shared/repos/hosts';
import { countActiveSessions } from '@argos/shared/repos/sessions';
import { countUsers } from '@argos/shared/repos/users';
import { presentAudit } from '../presenters.ts';
import { loadSettings } from '@argos/shared/settings';
import { defaultCookieDomain } from '@argos/shared/config';
import type { PanelState, Web } from '../web.ts';
import { Overview, parseHost, parseRange, RANGES } from '../traffic/overview.ts';

export function dashboardRoutes(web: Web): Router<PanelState> {
  const { db } = web.deps;
  const r = new Router<PanelState>();

  const overview = new Overview(db, web.deps.observability ?? null);

  r.get('/', async (ctx) => {
    const now = web.now();
    const range = parseRange(ctx.query.range);
    const host = parseHost(ctx.query.host);
    const [hosts, users, sessions, audit, caddy, settings, charts] = await Promise.all([
      countHosts(db),
      countUsers(db),
      countActiveSessions(db, now),
      listAudit(db, { limit: 10 }),
      web.caddyStatus(),
      loadSettings(db),
      overview.charts(range, host, now),
    ]);
    const setup = await firstRunSteps(ctx.state.user!.totpEnabledAt !== null, hosts);
    const health = await overview.health(caddy, settings, now);
    web.render(ctx, 'dashboard', {
      pageTitle: 'Dashboard',
      section: 'dashboard',
      counts: { hosts, users, sessions },
      audit: audit.map(presentAudit),
      caddy,
      setup,
      range,
      ranges: Object.entries(RANGES).map(([key, v]) => ({ key, label: v.label })),
      host,
      charts,
      health,
    });
  });

  /** The first-run checklist: second factor, portal URL and cookie domains, first host. */
  const firstRunSteps = async (hasTotp: boolean, hosts: number) => {
    const settings = await loadSettings(db);
    const domains = settings['cookie.domains'].length ? settings['cookie.domains'] : [defaultCookieDomain(web.deps.config.portalUrl)];
    const steps = [
      { done: hasTotp, title: 'Protect your admin account with two-factor authentication', href: '/account/totp', action: 'Set up TOTP' },
      {
        done: settings['cookie.domains'].length > 0 || hosts > 0,
        title: `Check the portal (${web.deps.config.portalUrl.origin}) and cookie domains (${domains.join(', ')}): hosts under them share one sign-in, others get a one-time handoff`,
        href: '/settings#cookie.domains',
        action: 'Review settings',
      },
      { done: hosts > 0, title: 'Publish your first host', href: '/hosts/new', action: 'Publish a host' },
    ];
    return steps.every((x) => x.done) ? null : steps;
  };

  r.get('/welcome', async (ctx) => {
    const setup = await firstRunSteps(ctx.state.user!.totpEnabledAt !== null, await countHosts(db));
    web.render(ctx, 'welcome', { pageTitle: 'Welcome', section: 'dashboard', setup });
  });

  return r;
}
