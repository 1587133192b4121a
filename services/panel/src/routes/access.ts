/**
 * Test access (the explainer: "this IP, this user, this URL: what happens and why", through the same decide
 * function as /verify, without side effects) and the decision log, newest first with filters.
 */
import Router from '@koa/router';
import { explain } from '@argos/gatekeeper/explain';
import { listDecisions } from '@argos/shared/repos/decisions';
import { listHosts } from '@argos/shared/repos/hosts';
import { str, type PanelState, type Web } from '../web.ts';

const PAGE = 100;

export function accessRoutes(web: Web): Router<PanelState> {
  const { db, config } = web.deps;
  const r = new Router<PanelState>();

  r.get('/access', async (ctx) => {
    const q = ctx.query;
    const values = {
      host: str(q.host),
      uri: str(q.uri) || '/',
      ip: str(q.ip),
      method: str(q.method) || 'GET',
      user: str(q.user),
      accept: str(q.accept) || 'text/html',
    };
    const hosts = (await listHosts(db)).map((h) => h.domain);
    const result = values.host && values.ip ? await explain(config, db, { ...values, user: values.user || undefined }) : null;
    const errors: Record<string, string> = {};
    if (result?.error) errors[/IP/.test(result.error) ? 'ip' : /host/.test(result.error) ? 'host' : /user/.test(result.error) ? 'user' : 'uri'] = result.error;
    web.render(ctx, 'access', { pageTitle: 'Test access', section: 'access', values, errors, hosts, result });
  });

  r.get('/decisions', async (ctx) => {
    const q = ctx.query;
    const filter = { host: str(q.host), verdict: str(q.verdict), reason: str(q.reason), ip: str(q.ip), user: str(q.user) };
    const page = Math.max(1, Math.min(1000, Number(str(q.page)) || 1));
    const rows = await listDecisions(db, { ...filter, limit: PAGE + 1, offset: (page - 1) * PAGE });
    const link = (p: number) => {
      const s = new URLSearchParams(Object.entries({ ...filter, page: p > 1 ? String(p) : '' }).filter(([, v]) => v));
      return `/decisions${s.size ? `?${s}` : ''}`;
    };
    web.render(ctx, 'decisions', {
      pageTitle: 'Decisions',
      section: 'decisions',
      filter,
      page,
      rows: rows.slice(0, PAGE),
      prevHref: page > 1 ? link(page - 1) : null,
      nextHref: rows.length > PAGE ? link(page + 1) : null,
    });
  });

  return r;
}
