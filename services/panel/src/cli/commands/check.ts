/** `argos check`: explain what Argos would answer for a request, and why, without side effects. */
import { explain, explainText } from '@argos/gatekeeper/explain';
import { str, UsageError, type Command } from '../framework.ts';

export const checkCommand: Command = {
  path: ['check'],
  summary: 'Explain the decision for a request (every check and its verdict), without side effects',
  usage: 'argos check --host H --uri U --ip IP [--method M] [--user U] [--accept A] [--json]',
  details: 'Example: argos check --host app.example.com --uri /admin --ip 203.0.113.9 --user alice\n--user simulates a logged-in session of that user; --accept application/json simulates an API client.',
  options: { host: { type: 'string' }, uri: { type: 'string' }, ip: { type: 'string' }, method: { type: 'string' }, user: { type: 'string' }, accept: { type: 'string' } },
  args: 0,
  json: true,
  async run(ctx, a) {
    const host = str(a, 'host');
    const uri = str(a, 'uri');
    const ip = str(a, 'ip');
    if (!host || !uri || !ip) throw new UsageError('--host, --uri and --ip are required');
    const { db } = await ctx.store();
    const e = await explain(ctx.config(), db, { host, uri, ip, method: str(a, 'method'), user: str(a, 'user'), accept: str(a, 'accept') });
    if (ctx.wantsJson) {
      ctx.json({
        input: e.input,
        error: e.error,
        verdict: e.decision?.verdict.kind,
        reason: e.decision?.verdict.reason,
        status: e.status,
        location: e.location,
        policy: e.decision?.ctx.policy,
        country: e.decision?.ctx.country,
        checks: e.decision?.trace,
      });
    } else ctx.out(explainText(e));
    return e.decision ? 0 : 1;
  },
};
