/** `argos audit verify|list|prune` and `argos secret list|clear`. */
import { CLI_ACTOR, checkAuditChain, listAudit, pruneAudit, type AuditFilter } from '@argos/shared/audit';
import { clearSecret } from '@argos/shared/commands/settings';
import { secretStatus } from '@argos/shared/secrets';
import { loadSettings } from '@argos/shared/settings';
import { str, UsageError, type Command } from '../framework.ts';
import { table } from '../table.ts';

/** A time given as an ISO date/time (UTC when no zone) or epoch milliseconds. */
export function parseTime(raw: string, name: string, endOfDay = false): number {
  const t = raw.trim();
  if (/^\d{13}$/.test(t)) return Number(t);
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(t);
  const ms = Date.parse(dateOnly ? `${t}T00:00:00Z` : /[zZ]|[+-]\d{2}:?\d{2}$/.test(t) ? t : `${t}Z`);
  if (!Number.isFinite(ms)) throw new UsageError(`--${name}: "${t}" is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)`);
  return dateOnly && endOfDay ? ms + 86_400_000 - 1 : ms;
}

const when = (ms: number | null) =>
  ms
    ? new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d{3}Z$/, 'Z')
    : '-';

export const auditCommands: Command[] = [
  {
    path: ['audit', 'verify'],
    summary: 'Verify the audit hash chain; reports the first broken link (exit status 1 when broken)',
    usage: 'argos audit verify [--json]',
    args: 0,
    json: true,
    async run(ctx) {
      const { db } = await ctx.store();
      const r = await checkAuditChain(db);
      if (ctx.wantsJson) ctx.json(r);
      else if (r.ok) ctx.out(`OK: ${r.checked} audit entries, chain intact${r.anchoredAt ? ` (starts at the pruning anchor #${r.anchoredAt})` : ''}.`);
      else ctx.err(`BROKEN: the audit chain breaks at entry #${r.brokenAt}: ${r.reason}.`);
      return r.ok ? 0 : 1;
    },
  },
  {
    path: ['audit', 'list'],
    summary: 'List audit entries, newest first',
    usage: 'argos audit list [--actor A] [--action PREFIX] [--target T] [--since DATE] [--until DATE] [--limit N] [--json]',
    details: 'Dates: YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC), or epoch milliseconds. --action matches a prefix (host matches host.create).',
    options: {
      actor: { type: 'string' },
      action: { type: 'string' },
      target: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      limit: { type: 'string' },
    },
    args: 0,
    json: true,
    async run(ctx, a) {
      const f: AuditFilter = { actor: str(a, 'actor'), action: str(a, 'action'), target: str(a, 'target') };
      const since = str(a, 'since');
      const until = str(a, 'until');
      if (since) f.since = parseTime(since, 'since');
      if (until) f.until = parseTime(until, 'until', true);
      const limit = str(a, 'limit');
      if (limit !== undefined && !/^\d{1,5}$/.test(limit)) throw new UsageError('--limit: a number from 1 to 10000');
      f.limit = limit ? Math.max(1, Math.min(10_000, Number(limit))) : 100;
      const { db } = await ctx.store();
      const rows = await listAudit(db, f);
      if (ctx.wantsJson) {
        return void ctx.json({
          entries: rows.map((r) => ({
            id: r.id,
            ts: r.ts,
            time: new Date(r.ts).toISOString(),
            actor: r.actor,
            action: r.action,
            target: r.target,
            ip: r.ip,
            user_agent: r.user_agent,
            details: JSON.parse(r.details) as unknown,
            hash: r.hash,
          })),
        });
      }
      if (!rows.length) return void ctx.out('No entries match.');
      ctx.out(
        table(
          ['ID', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'IP'],
          rows.map((r) => [r.id, when(r.ts), r.actor, r.action, r.target, r.ip ?? '']),
        ),
      );
    },
  },
  {
    path: ['audit', 'prune'],
    summary: 'Delete audit entries older than the audit.retention setting now (the panel also does it daily)',
    usage: 'argos audit prune',
    details: 'An anchor entry (audit.prune) records the hash of the last deleted entry, so `argos audit verify` still passes.',
    args: 0,
    async run(ctx) {
      const { db } = await ctx.store();
      const settings = await loadSettings(db);
      const n = await pruneAudit(db, Date.now() - settings['audit.retention'] * 1000, CLI_ACTOR);
      ctx.out(n ? `Deleted ${n} audit entries older than the retention; the chain stays verifiable.` : 'Nothing to prune.');
    },
  },
  {
    path: ['secret', 'list'],
    summary: 'Show which secrets are set (never their values)',
    usage: 'argos secret list [--json]',
    args: 0,
    json: true,
    async run(ctx) {
      const { db } = await ctx.store();
      const status = await secretStatus(db);
      if (ctx.wantsJson) return void ctx.json({ secrets: status });
      ctx.out(
        table(
          ['NAME', 'SET', 'UPDATED'],
          status.map((s) => [s.name, s.set ? 'yes' : 'no', when(s.updatedAt)]),
        ),
      );
    },
  },
  {
    path: ['secret', 'clear'],
    summary: 'Delete a stored secret',
    usage: 'argos secret clear <name>',
    args: 1,
    async run(ctx, a) {
      const { db } = await ctx.store();
      await clearSecret(db, CLI_ACTOR, a.positionals[0]!);
      ctx.out(`Secret ${a.positionals[0]} cleared.`);
    },
  },
];
