/**
 * Explaining a decision without side effects: the same parse/decide/respond path as /verify, over a
 * read-only state (dry-run lookups: no rate tokens taken, no session touched, nothing logged or audited).
 * Used by `argos check` and the panel's Test access page.
 */
import type { Config } from '@argos/shared/config';
import type { Database } from '@argos/shared/db/sqlite';
import { silentLogger } from '@argos/shared/log';
import { Regulator } from '@argos/shared/regulation';
import { listActiveBans } from '@argos/shared/repos/bans';
import { normalizeIp } from '@argos/shared/net';
import { normalizeHost } from '@argos/shared/hostname';
import type { Session } from '@argos/shared/repos/sessions';
import { GeoDb } from '@argos/shared/geo';
import { Vault } from '@argos/shared/crypto';
import { keyVersion } from '@argos/shared/store';
import { readSecret } from '@argos/shared/secrets';
import { RateBuckets } from './defences/rate.ts';
import { queryDecisions, type CsDecision } from './defences/crowdsec.ts';
import { crowdsecUrl } from './defences/index.ts';
import { GatekeeperState } from './state.ts';
import { normalizeUri } from './verify/uri.ts';
import { classifyClient } from './verify/parse.ts';
import { decide } from './verify/decide.ts';
import { respond } from './verify/respond.ts';
import type { Target } from './verify/target.ts';
import type { Decision } from './verify/verdict.ts';

export interface ExplainInput {
  host: string;
  uri: string;
  ip: string;
  method?: string;
  /** Simulate a logged-in user (a session with the factors the user has). */
  user?: string;
  accept?: string;
  proto?: 'http' | 'https';
}

export interface Explanation {
  input: ExplainInput;
  decision: Decision | null;
  status: number;
  location?: string;
  error?: string;
  /** What could not be checked (e.g. CrowdSec unreachable), in plain words. */
  notes?: string[];
}

const SIMULATED = 'simulated-session-token-for-explain-only';

export async function explain(config: Config, db: Database, input: ExplainInput): Promise<Explanation> {
  const regulator = new Regulator({ limits: () => ({ maxFailures: 5, windowS: 300, banTimeS: 900 }) });
  regulator.restore(await listActiveBans(db));
  // Network defences, read-only: the country database, fresh buckets only peeked at (the live buckets are in the
  // gatekeeper's memory), and CrowdSec asked once about this address.
  const notes: string[] = [];
  const geo = await GeoDb.openDefault(config.dataDir).catch((e) => {
    notes.push(`country database unusable: ${e instanceof Error ? e.message : String(e)}`);
    return null;
  });
  let csHit: CsDecision | null = null;
  const crowdsec = { check: () => csHit, peek: () => csHit };
  const state = new GatekeeperState({ db, config, log: silentLogger, regulator, geo, rate: new RateBuckets({ max: 10 }), crowdsec });
  await state.poll();
  notes.push('rate: buckets live in the gatekeeper; this shows the limit that applies to a client with a full bucket');
  const csUrl = crowdsecUrl(config, state.settings);
  const csIp = normalizeIp(input.ip);
  if (csUrl && csIp) {
    try {
      const key = config.crowdsecKey ?? (await readSecret(db, new Vault(config.masterKey, await keyVersion(db)), 'crowdsec.bouncer_key'));
      if (!key) notes.push('CrowdSec not asked: no bouncer key (ARGOS_CROWDSEC_KEY or secret crowdsec.bouncer_key)');
      else csHit = await queryDecisions(csUrl, key, csIp, { captchaAsBan: state.settings['crowdsec.captcha_as_ban'] });
    } catch (e) {
      notes.push(`CrowdSec not asked: ${e instanceof Error ? e.message : String(e)}`);
    }
  } else if (!csUrl) notes.push('CrowdSec not configured');

  const ip = normalizeIp(input.ip);
  const host = normalizeHost(input.host);
  const uri = normalizeUri(input.uri.startsWith('/') ? input.uri : `/${input.uri}`);
  const method = (input.method ?? 'GET').toUpperCase();
  const fail = (error: string): Explanation => ({ input, decision: null, status: 400, error });
  if (!ip) return fail(`"${input.ip}" is not an IP address`);
  if (!host) return fail(`"${input.host}" is not a host name`);
  if (!uri.ok) return fail(`URI refused: ${uri.error}`);

  let simulated: Session | null = null;
  if (input.user) {
    const id = state.usernames.get(input.user.toLowerCase());
    if (id === undefined) return fail(`no user ${input.user}`);
    const now = Date.now();
    simulated = {
      id: 0, kind: 'portal', userId: id, factors: state.users.get(id)?.hasTotp ? 2 : 1, authMethod: 'simulated', remember: false, createdAt: now, lastSeenAt: now,
      expiresAt: now + 60_000, idleTimeoutS: 60, ip, userAgent: null, country: null, csrfSecret: null, reauthAt: null, revokedAt: null,
    };
  }
  const accept = input.accept ?? 'text/html';
  const client = classifyClient(method, { accept });
  const target: Target = {
    requestId: 'explain',
    method,
    proto: input.proto ?? (config.portalUrl.protocol === 'https:' ? 'https' : 'http'),
    host,
    authority: input.host.toLowerCase(),
    path: uri.path,
    query: uri.query,
    rawUri: input.uri,
    clientIp: ip,
    clientKind: client.kind,
    topLevel: client.topLevel,
    sessionToken: simulated ? SIMULATED : null,
    authorization: null,
    userAgent: null,
  };
  const look = { ...state.lookups(true), session: async (t: string) => (t === SIMULATED ? simulated : null) };
  const decision = await decide(target, look);
  const answer = respond(decision.verdict, target, config.portalUrl);
  return { input, decision, status: answer.status, location: answer.headers.Location, notes };
}

/** Plain-words rendering for the CLI. */
export function explainText(e: Explanation): string {
  if (!e.decision) return `cannot check: ${e.error}`;
  const d = e.decision;
  const v = d.verdict;
  const lines = [
    `${e.input.method ?? 'GET'} ${e.input.host}${e.input.uri} from ${e.input.ip}${e.input.user ? ` as ${e.input.user}` : ' (not logged in)'}`,
    `verdict: ${v.kind.toUpperCase()} (${v.reason}) → HTTP ${e.status}${e.location ? ` to ${e.location}` : ''}`,
    '',
    'checks, in order:',
    ...d.trace.map((s) => `  ${s.check.padEnd(12)} ${s.result.padEnd(12)} ${[s.reason, s.note].filter(Boolean).join(': ')}`),
  ];
  if (d.ctx.policy) lines.push('', `effective policy: ${d.ctx.policy}${d.ctx.rule !== null ? ` (rule #${d.ctx.rule})` : ' (host default)'}`);
  lines.push(`country: ${d.ctx.country ?? 'unknown'}`);
  for (const n of e.notes ?? []) lines.push(`note: ${n}`);
  return lines.join('\n');
}
