/** A check: one small, named step of the decision. */
import type { Lookups } from '../lookups.ts';
import type { DecisionContext, Outcome } from '../verdict.ts';

export interface Check {
  readonly name: string;
  run(ctx: DecisionContext, look: Lookups): Outcome | Promise<Outcome>;
}
