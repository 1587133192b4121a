/**
 * GET /audit: the audit log, newest first, filtered by actor, action (prefix), target and time (since/until),
 * 100 per page; GET /audit.csv: the same filters as CSV (every matching entry, formula-safe cells);
 * GET /audit/verify: walks the hash chain and shows the first broken link.
 */
import { Readable } from 'node:stream';
import Router from '@koa/router';
import { AUDIT_CSV_HEADER, auditCsvLine, checkAuditChain, csvCell, iterateAudit, listAudit, type AuditFilter } from '@argos/shared/audit';
import { presentAudit } from '../presenters.ts';
import { AUDIT_PAGE, auditPageQuery } from '../schemas.ts';
import type { Ctx, PanelState, Web } from '../web.ts';

/** A since/until form value: YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC), or epoch milliseconds; '' when absent or invalid. */
function timeParam(v: unknown, endOfDay: boolean): { text: string; ms: number | undefined } {
  const text = typeof v === 'string' ? v.trim().slice(0, 40) : '';
  if (!text) return { text: '', ms: undefined };
  if (/^\d{13}$/.test(text)) return { text, ms: Number(text) };
  const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?))?$/.exec(text);
  if (!m) return { text: '', ms: undefined };
  const ms = Date.parse(`${m[1]}T${m[2] ?? '00:00'}${m[2]?.length === 5 ? ':00' : ''}Z`);
  if (!Number.isFinite(ms)) return { text: '', ms: undefined };
  return { text, ms: !m[2] && endOfDay ? ms + 86_400_000 - 1 : ms };
}

function filterOf(ctx: Ctx) {
  const q = auditPageQuery(ctx.query);
  const since = timeParam(ctx.query.since, false);
  const until = timeParam(ctx.query.until, true);
  const filter: AuditFilter = { actor: q.actor || undefined, action: q.action || undefined, target: q.target || undefined, since: since.ms, until: until.ms };
  const params = { actor: q.actor, action: q.action, target: q.target, since: since.text, until: until.text };
  return { q, filter, params };
}

export function auditRoutes(web: Web): Router<PanelState> {
  const { db } = web.deps;
  const r = new Router<PanelState>();

  r.get('/audit', async (ctx) => {
    const { q, filter, params } = filterOf(ctx);
    const rows = await listAudit(db, { ...filter, limit: AUDIT_PAGE + 1, offset: (q.page - 1) * AUDIT_PAGE });
    const link = (extra: Record<string, string>) => {
      const p = new URLSearchParams();
      for (const [k, v] of Object.entries({ ...params, ...extra })) if (v) p.set(k, v);
      const s = p.toString();
      return s ? `?${s}` : '';
    };
    web.render(ctx, 'audit', {
      pageTitle: 'Audit log',
      section: 'audit',
      filter: { ...q, ...params },
      entries: rows.slice(0, AUDIT_PAGE).map(presentAudit),
      prevHref: q.page > 1 ? `/audit${link({ page: q.page > 2 ? String(q.page - 1) : '' })}` : null,
      nextHref: rows.length > AUDIT_PAGE ? `/audit${link({ page: String(q.page + 1) })}` : null,
      exportHref: `/api/v1/audit${link({ limit: '10000' })}`,
      csvHref: `/audit.csv${link({})}`,
    });
  });

  r.get('/audit.csv', async (ctx) => {
    const { filter } = filterOf(ctx);
    const stamp = new Date(web.now())
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}Z$/, 'Z');
    ctx.type = 'text/csv; charset=utf-8';
    ctx.set('Content-Disposition', `attachment; filename="argos-audit-${stamp}.csv"`);
    ctx.set('Cache-Control', 'no-store');
    async function* csv(): AsyncGenerator<string> {
      yield AUDIT_CSV_HEADER.map(csvCell).join(',') + '\r\n';
      for await (const row of iterateAudit(db, filter)) yield auditCsvLine(row);
    }
    ctx.body = Readable.from(csv());
  });

  r.get('/audit/verify', async (ctx) => {
    const rep = await checkAuditChain(db);
    web.render(
      ctx,
      'message',
      {
        pageTitle: 'Audit chain',
        heading: rep.ok ? 'The audit chain is intact' : 'The audit chain is broken',
        text: rep.ok
          ? `${rep.checked} entries verified${rep.anchoredAt ? `, starting at the pruning anchor #${rep.anchoredAt}` : ''}.`
          : `Entry #${rep.brokenAt}: ${rep.reason}. Entries before it verified.`,
        link: { href: '/audit', label: 'Audit log' },
      },
      rep.ok ? 200 : 409,
    );
  });

  return r;
}
