/** Verdicts, check outcomes and the decision context shared by the checks. */
import type { Host, Policy } from '@argos/shared/repos/hosts';
import type { Target } from './target.ts';

export interface Identity {
  userId: number;
  username: string;
  email: string | null;
  name: string | null;
  groups: string[];
  /** 1 = password (or SSO), 2 = second factor completed. */
  factors: number;
  via: 'session' | 'token' | 'basic';
  sessionId?: number;
  tokenId?: number;
}

export type Verdict =
  | { kind: 'allow'; reason: string; identity: Identity | null }
  | { kind: 'login'; reason: string }
  | { kind: 'deny'; reason: string }
  | { kind: 'rate_limited'; reason: string; retryAfterS: number }
  /** A logged-in user without TOTP meets a two_factor host and may enroll: send them to enrollment. */
  | { kind: 'enroll'; reason: string }
  /** A fixed redirect with a cookie (the cookie-domain handoff). */
  | { kind: 'redirect'; reason: string; location: string; setCookie: string };

/** A check either decides (first decisive verdict wins) or lets the next check run. */
export type Outcome = { decided: Verdict; note?: string } | { decided?: undefined; note?: string };

/** What the checks build up as they run. */
export interface DecisionContext {
  target: Target;
  host: Host | null;
  /** Effective policy after the host's ordered rules. */
  policy: Policy | null;
  /** Which rule set the policy (its position), if any. */
  rule: number | null;
  identity: Identity | null;
  country: string | null;
}

export interface TraceStep {
  check: string;
  result: 'continue' | Verdict['kind'] | 'error';
  reason?: string;
  note?: string;
}

export interface Decision {
  verdict: Verdict;
  trace: TraceStep[];
  ctx: DecisionContext;
}

export const cont = (note?: string): Outcome => ({ note });
export const allow = (reason: string, identity: Identity | null, note?: string): Outcome => ({ decided: { kind: 'allow', reason, identity }, note });
export const deny = (reason: string, note?: string): Outcome => ({ decided: { kind: 'deny', reason }, note });
export const login = (reason: string, note?: string): Outcome => ({ decided: { kind: 'login', reason }, note });
