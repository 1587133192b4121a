/**
 * decide: runs the ordered checks over a parsed Target. The first decisive verdict wins; a check that
 * throws denies (500 is never an allow); running out of checks without a verdict denies too.
 * The same function serves /verify, `argos check` and the panel's Test access page.
 */
import type { Check } from './checks/check.ts';
import type { Lookups } from './lookups.ts';
import type { Target } from './target.ts';
import type { Decision, DecisionContext, TraceStep, Verdict } from './verdict.ts';
import { banCheck } from './checks/ban.ts';
import { geoCheck } from './checks/geo.ts';
import { rateCheck } from './checks/rate.ts';
import { hostPolicyCheck } from './checks/host-policy.ts';
import { credentialsCheck } from './checks/credentials.ts';
import { factorsCheck } from './checks/factors.ts';
import { subjectsCheck } from './checks/subjects.ts';
import { handoffCheck } from './checks/handoff.ts';

/** The pipeline, in order. */
export const CHECKS: readonly Check[] = [banCheck, geoCheck, rateCheck, hostPolicyCheck, handoffCheck, credentialsCheck, factorsCheck, subjectsCheck];

export async function decide(target: Target, look: Lookups, checks: readonly Check[] = CHECKS): Promise<Decision> {
  const ctx: DecisionContext = { target, host: look.host(target.host) ?? null, policy: null, rule: null, identity: null, country: null };
  const trace: TraceStep[] = [];
  for (const check of checks) {
    let outcome;
    try {
      // Most checks answer synchronously: awaiting only real promises saves a microtask turn per check on /verify.
      const r = check.run(ctx, look);
      outcome = r instanceof Promise ? await r : r;
    } catch (e) {
      trace.push({ check: check.name, result: 'error', note: e instanceof Error ? e.message : String(e) });
      return { verdict: { kind: 'deny', reason: 'internal_error' }, trace, ctx };
    }
    if (outcome.decided) {
      trace.push({ check: check.name, result: outcome.decided.kind, reason: outcome.decided.reason, note: outcome.note });
      return { verdict: outcome.decided, trace, ctx };
    }
    trace.push({ check: check.name, result: 'continue', note: outcome.note });
  }
  const verdict: Verdict = { kind: 'deny', reason: 'no_decision' };
  trace.push({ check: 'end', result: 'deny', reason: verdict.reason, note: 'no check decided' });
  return { verdict, trace, ctx };
}
