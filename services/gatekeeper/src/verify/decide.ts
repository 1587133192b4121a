/**
 * decide: runs the ordered checks over a parsed Target. The first decisive verdict wins; a check that
 * throws denies (500 is never an allow); running out of checks without a verdict denies too.
 * The same function serves /verify, `argos check` and the panel's Test access page.
 *
 * Synchronous while every check answers synchronously (a cached session, no Basic, no handoff: the /verify hot
 * path), a Promise from the first check that needs one; callers simply await the result.
 */
import type { Check } from './checks/check.ts';
import type { Lookups } from './lookups.ts';
import type { Target } from './target.ts';
import type { Decision, DecisionContext, Outcome, TraceStep, Verdict } from './verdict.ts';
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

interface Run {
  ctx: DecisionContext;
  trace: TraceStep[];
  look: Lookups;
  checks: readonly Check[];
}

export function decide(target: Target, look: Lookups, checks: readonly Check[] = CHECKS): Decision | Promise<Decision> {
  const ctx: DecisionContext = { target, host: look.host(target.host) ?? null, policy: null, rule: null, identity: null, country: null };
  return runFrom({ ctx, trace: [], look, checks }, 0);
}

function runFrom(run: Run, start: number): Decision | Promise<Decision> {
  const { ctx, look, checks } = run;
  for (let i = start; i < checks.length; i++) {
    const check = checks[i]!;
    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = check.run(ctx, look);
    } catch (e) {
      return failed(run, check, e);
    }
    if (outcome instanceof Promise) {
      return outcome.then(
        (o) => settle(run, check, o) ?? runFrom(run, i + 1),
        (e: unknown) => failed(run, check, e),
      );
    }
    const done = settle(run, check, outcome);
    if (done) return done;
  }
  const verdict: Verdict = { kind: 'deny', reason: 'no_decision' };
  run.trace.push({ check: 'end', result: 'deny', reason: verdict.reason, note: 'no check decided' });
  return { verdict, trace: run.trace, ctx };
}

/** Records one check's outcome; the decision when it decided. */
function settle(run: Run, check: Check, outcome: Outcome): Decision | null {
  if (outcome.decided) {
    run.trace.push({ check: check.name, result: outcome.decided.kind, reason: outcome.decided.reason, note: outcome.note });
    return { verdict: outcome.decided, trace: run.trace, ctx: run.ctx };
  }
  run.trace.push({ check: check.name, result: 'continue', note: outcome.note });
  return null;
}

function failed(run: Run, check: Check, e: unknown): Decision {
  run.trace.push({ check: check.name, result: 'error', note: e instanceof Error ? e.message : String(e) });
  return { verdict: { kind: 'deny', reason: 'internal_error' }, trace: run.trace, ctx: run.ctx };
}
