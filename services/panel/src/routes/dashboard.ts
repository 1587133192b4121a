/** GET /: counts, the last audit entries and Caddy's state at a glance. */
import Router from '@koa/router';
import { listAudit } from '@argos/shared/audit';
import { countHosts } from '@argos/shared/repos/hosts';
import { countActiveSessions } from '@argos/shared/repos/sessions';
import { countUsers } from '@argos/shared/repos/users';
import { presentAudit } from '../presenters.ts';
import type { PanelState, Web } from '../web.ts';

export function dashboardRoutes(web: Web): Router<PanelState> {
  const { db } = web.deps;
  const r = new Router<PanelState>();

  r.get('/', async (ctx) => {
    const [hosts, users, sessions, audit, caddy] = await Promise.all([
      countHosts(db),
      countUsers(db),
      countActiveSessions(db, web.now()),
      listAudit(db, { limit: 10 }),
      web.caddyStatus(),
    ]);
    web.render(ctx, 'dashboard', { pageTitle: 'Dashboard', section: 'dashboard', counts: { hosts, users, sessions }, audit: audit.map(presentAudit), caddy });
  });

  return r;
}
