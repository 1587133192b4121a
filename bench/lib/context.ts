/** What every scenario gets from bench/run.ts, and what it returns. */
import type { BenchArgos, Gatekeeper, TrivialServer } from './argos.ts';
import type { WrkResult } from './wrk.ts';

export interface Timing {
  /** Alternating A/B rounds. */
  rounds: number;
  warmupS: number;
  measureS: number;
}

export interface BenchContext {
  quick: boolean;
  argos: BenchArgos;
  /** The running gatekeeper (scenarios may restart it through restartGatekeeper). */
  gk: Gatekeeper;
  restartGatekeeper(): Promise<Gatekeeper>;
  /** Trivial node:http auth server answering 200 with the gatekeeper's allow headers. */
  trivialAuth: TrivialServer;
  upstream: TrivialServer;
  hosts: { app: string; flood: string; edit: string };
  /** A logged-in visitor (one_factor session) on the app host. */
  alice: { id: number; token: string };
  /** Headers Caddy's forward_auth would send to /verify for `host`, for a client at `clientIp`. */
  verifyHeaders(o: { host: string; token?: string; clientIp?: string; accept?: string }): Record<string, string>;
  crowdsec: { decisions: number; note: string };
  /** wrk settings used for throughput runs. */
  load: { connections: number; threads: number };
  timing(kind: 'throughput' | 'caddy' | 'writes' | 'flood'): Timing;
  log(msg: string): void;
  /** Checks a wrk run answered only with `status` (wrk counts non-2xx/3xx as status errors). */
  expectStatus(what: string, r: WrkResult, ok: 'success' | 'errors'): void;
}

export interface ScenarioResult {
  id: number;
  name: string;
  metric: string;
  value: number;
  baseline: number;
  ratio: number;
  target: string;
  pass: boolean;
  /** Everything else (per-round numbers, samples, notes): written to bench/results/latest-details.json. */
  details: Record<string, unknown>;
}

export interface Scenario {
  id: number;
  title: string;
  run(ctx: BenchContext): Promise<ScenarioResult>;
}
