/** GET /audit: the audit log, newest first, filtered by actor, action (prefix) and target, 100 per page. */
import Router from '@koa/router';
import { listAudit } from '@argos/shared/audit';
import { presentAudit } from '../presenters.ts';
import { AUDIT_PAGE, auditPageQuery } from '../schemas.ts';
import type { PanelState, Web } from '../web.ts';

export function auditRoutes(web: Web): Router<PanelState> {
  const { db } = web.deps;
  const r = new Router<PanelState>();

  r.get('/audit', async (ctx) => {
    const q = auditPageQuery(ctx.query);
    const filter = { actor: q.actor || undefined, action: q.action || undefined, target: q.target || undefined };
    const rows = await listAudit(db, { ...filter, limit: AUDIT_PAGE + 1, offset: (q.page - 1) * AUDIT_PAGE });
    const link = (extra: Record<string, string>) => {
      const p = new URLSearchParams();
      for (const [k, v] of Object.entries({ actor: q.actor, action: q.action, target: q.target, ...extra })) if (v) p.set(k, v);
      const s = p.toString();
      return s ? `?${s}` : '';
    };
    web.render(ctx, 'audit', {
      pageTitle: 'Audit log',
      section: 'audit',
      filter: q,
      entries: rows.slice(0, AUDIT_PAGE).map(presentAudit),
      prevHref: q.page > 1 ? `/audit${link({ page: q.page > 2 ? String(q.page - 1) : '' })}` : null,
      nextHref: rows.length > AUDIT_PAGE ? `/audit${link({ page: String(q.page + 1) })}` : null,
      exportHref: `/api/v1/audit${link({ limit: '10000' })}`,
    });
  });

  return r;
}
