import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostDefaults, type Host, type HostRule } from '@argos/shared/repos/hosts';
import type { Session } from '@argos/shared/repos/sessions';
import { decide } from './decide.ts';
import type { Lookups, UserView } from './lookups.ts';
import type { Target } from './target.ts';
import type { Check } from './checks/check.ts';

const NOW = 1_800_000_000_000;
const TOKEN = 'T'.repeat(43);

export function buildHost(domain: string, patch: Partial<Host> = {}): Host {
  return { ...hostDefaults(domain, ['http://127.0.0.1:9']), id: 1, rules: [], createdAt: 0, updatedAt: 0, ...patch };
}

const rule = (p: Partial<HostRule>): HostRule => ({ id: 1, position: 1, policy: 'bypass', paths: [], methods: [], networks: [], ...p });

function buildTarget(patch: Partial<Target> = {}): Target {
  return {
    requestId: 'r',
    method: 'GET',
    proto: 'https',
    host: 'app.example.com',
    authority: 'app.example.com',
    path: '/',
    query: '',
    rawUri: '/',
    clientIp: '203.0.113.9',
    clientKind: 'navigation',
    topLevel: true,
    sessionToken: null,
    authorization: null,
    userAgent: null,
    ...patch,
  };
}

const alice: UserView = { id: 7, username: 'alice', email: 'a@example.com', displayName: 'Alice', groups: ['family'], disabled: false, hasTotp: false };
const session = (patch: Partial<Session> = {}): Session => ({
  id: 1, kind: 'portal', userId: 7, factors: 1, authMethod: 'password', remember: false, createdAt: NOW - 1000, lastSeenAt: NOW - 1000,
  expiresAt: NOW + 3_600_000, idleTimeoutS: 3600, ip: null, userAgent: null, country: null, csrfSecret: null, reauthAt: null, revokedAt: null, ...patch,
});

function lookups(hosts: Host[], opts: { session?: Session | null; user?: UserView; banned?: boolean; country?: string | null; limited?: boolean; selfEnroll?: boolean } = {}): Lookups {
  return {
    dryRun: false,
    now: () => NOW,
    host: (d) => hosts.find((h) => h.domain === d),
    user: (id) => (id === 7 ? (opts.user ?? alice) : undefined),
    session: async (t) => (t === TOKEN ? (opts.session === undefined ? session() : opts.session) : null),
    ban: () => (opts.banned ? { source: 'crowdsec', reason: 'test', untilMs: null } : null),
    country: () => (opts.country === undefined ? 'US' : opts.country),
    rate: () => (opts.limited ? { ok: false, retryAfterS: 7 } : { ok: true }),
    token: () => null,
    basic: async () => null,
    failure: () => undefined,
    handoff: async () => null,
    selfEnroll: () => opts.selfEnroll ?? true,
  };
}

const table: { name: string; host: Partial<Host>; target?: Partial<Target>; look?: Parameters<typeof lookups>[1]; want: string; reason?: string }[] = [
  { name: 'one_factor without cookie → login', host: {}, want: 'login', reason: 'not_authenticated' },
  { name: 'one_factor with a live session → allow', host: {}, target: { sessionToken: TOKEN }, want: 'allow', reason: 'authenticated' },
  { name: 'revoked session → login', host: {}, target: { sessionToken: TOKEN }, look: { session: session({ revokedAt: NOW - 1 }) }, want: 'login' },
  { name: 'idle-expired session → login', host: {}, target: { sessionToken: TOKEN }, look: { session: session({ lastSeenAt: NOW - 3_601_000 }) }, want: 'login' },
  { name: 'absolute-expired session → login', host: {}, target: { sessionToken: TOKEN }, look: { session: session({ expiresAt: NOW - 1 }) }, want: 'login' },
  { name: 'panel session cannot open a published host', host: {}, target: { sessionToken: TOKEN }, look: { session: session({ kind: 'panel' }) }, want: 'login' },
  { name: 'disabled user → login', host: {}, target: { sessionToken: TOKEN }, look: { user: { ...alice, disabled: true } }, want: 'login' },
  { name: 'unknown token → login', host: {}, target: { sessionToken: 'X'.repeat(43) }, want: 'login' },
  { name: 'bypass host without cookie → allow', host: { policy: 'bypass' }, want: 'allow', reason: 'bypass' },
  { name: 'deny host even when logged in → deny', host: { policy: 'deny' }, target: { sessionToken: TOKEN }, want: 'deny', reason: 'policy_deny' },
  { name: 'disabled host → deny', host: { enabled: false }, target: { sessionToken: TOKEN }, want: 'deny', reason: 'host_disabled' },
  { name: 'two_factor, one-factor session, no TOTP, self-enrollment on → sent to enrollment (never passes)', host: { policy: 'two_factor' }, target: { sessionToken: TOKEN }, want: 'enroll' },
  { name: 'two_factor, one-factor session, self-enrollment off → deny (never falls back to one_factor)', host: { policy: 'two_factor' }, target: { sessionToken: TOKEN }, look: { selfEnroll: false }, want: 'deny', reason: 'second_factor_required' },
  { name: 'two_factor, one-factor session of a TOTP user → deny', host: { policy: 'two_factor' }, target: { sessionToken: TOKEN }, look: { user: { ...alice, hasTotp: true } }, want: 'deny', reason: 'second_factor_required' },
  { name: 'two_factor with a two-factor session → allow', host: { policy: 'two_factor' }, target: { sessionToken: TOKEN }, look: { session: session({ factors: 2 }) }, want: 'allow' },
  { name: 'user outside allowed groups → deny', host: { allowedGroups: ['admins'] }, target: { sessionToken: TOKEN }, want: 'deny', reason: 'subject_not_allowed' },
  { name: 'member of an allowed group → allow', host: { allowedGroups: ['admins', 'family'] }, target: { sessionToken: TOKEN }, want: 'allow', reason: 'group_allowed' },
  { name: 'listed user → allow', host: { allowedUsers: ['alice'] }, target: { sessionToken: TOKEN }, want: 'allow', reason: 'user_allowed' },
  { name: 'banned client on a bypass host → deny first', host: { policy: 'bypass' }, look: { banned: true }, want: 'deny', reason: 'crowdsec_ban' },
  { name: 'rate-limited client → 429 verdict', host: { policy: 'bypass' }, look: { limited: true }, want: 'rate_limited' },
  { name: 'country allow-list miss → deny', host: { policy: 'bypass', geoMode: 'allow', geoCountries: ['DE'] }, want: 'deny', reason: 'geo_not_allowed' },
  { name: 'country allow-list hit → continue', host: { policy: 'bypass', geoMode: 'allow', geoCountries: ['US'] }, want: 'allow' },
  { name: 'LAN denied when the host says so', host: { policy: 'bypass', geoMode: 'allow', geoCountries: ['US'], geoLan: 'deny' }, look: { country: 'LAN' }, want: 'deny', reason: 'geo_lan_denied' },
  { name: 'unknown country denied when the host says so', host: { policy: 'bypass', geoMode: 'deny', geoCountries: ['CN'], geoUnknown: 'deny' }, look: { country: null }, want: 'deny' },
  { name: 'bypass rule on /api/health lets the probe through', host: { rules: [rule({ paths: ['/api/health'] })] }, target: { path: '/api/health' }, want: 'allow', reason: 'bypass' },
  { name: 'bypass rule is prefix-at-boundary: /api/healthz still needs login', host: { rules: [rule({ paths: ['/api/health'] })] }, target: { path: '/api/healthz' }, want: 'login' },
  { name: 'normalised /api/admin (from /api/health/../admin) needs login', host: { rules: [rule({ paths: ['/api/health'] })] }, target: { path: '/api/admin' }, want: 'login' },
  { name: 'case matters: /API/health is not the bypass path', host: { rules: [rule({ paths: ['/api/health'] })] }, target: { path: '/API/health' }, want: 'login' },
  { name: 'method-limited rule: POST is not bypassed', host: { rules: [rule({ paths: ['/api/health'], methods: ['GET'] })] }, target: { path: '/api/health', method: 'POST' }, want: 'login' },
  { name: 'network rule: only the LAN is bypassed', host: { rules: [rule({ networks: ['192.168.1.0/24'] })] }, target: { clientIp: '192.168.1.20' }, want: 'allow' },
  { name: 'network rule: outside the LAN needs login', host: { rules: [rule({ networks: ['192.168.1.0/24'] })] }, target: { clientIp: '192.168.2.20' }, want: 'login' },
  { name: 'deny rule raises the requirement for /admin', host: { policy: 'bypass', rules: [rule({ policy: 'deny', paths: ['/admin/**'] })] }, target: { path: '/admin/users' }, want: 'deny', reason: 'policy_deny' },
  { name: 'first matching rule wins', host: { rules: [rule({ id: 1, position: 1, policy: 'deny', paths: ['/x'] }), rule({ id: 2, position: 2, policy: 'bypass', paths: ['/x'] })] }, target: { path: '/x' }, want: 'deny' },
];

for (const c of table) {
  test(`decide: ${c.name}`, async () => {
    const d = await decide(buildTarget(c.target), lookups([buildHost('app.example.com', c.host)], c.look));
    assert.equal(d.verdict.kind, c.want, JSON.stringify(d.trace));
    if (c.reason) assert.equal(d.verdict.reason, c.reason);
  });
}

test('decide: an unknown host is refused before credentials are looked at', async () => {
  const d = await decide(buildTarget({ host: 'other.example.com', sessionToken: TOKEN }), lookups([buildHost('app.example.com')]));
  assert.equal(d.verdict.kind, 'deny');
  assert.equal(d.verdict.reason, 'unknown_host');
});

test('decide: a check that throws denies, and the trace says which', async () => {
  const boom: Check = { name: 'boom', run: () => { throw new Error('lookup exploded'); } };
  const d = await decide(buildTarget(), lookups([buildHost('app.example.com', { policy: 'bypass' })]), [boom]);
  assert.equal(d.verdict.kind, 'deny');
  assert.equal(d.verdict.reason, 'internal_error');
  assert.equal(d.trace.at(-1)?.result, 'error');
});

test('decide: running out of checks denies', async () => {
  const d = await decide(buildTarget(), lookups([buildHost('app.example.com')]), []);
  assert.equal(d.verdict.kind, 'deny');
});

test('decide: the trace explains every check that ran', async () => {
  const d = await decide(buildTarget({ sessionToken: TOKEN }), lookups([buildHost('app.example.com')]));
  assert.deepEqual(d.trace.map((s) => s.check), ['ban', 'geo', 'rate', 'host_policy', 'handoff', 'credentials', 'factors', 'subjects']);
  assert.equal(d.verdict.kind, 'allow');
  assert.ok(d.verdict.kind === 'allow' && d.verdict.identity?.username === 'alice');
});

test('decide: API tokens stand for the sign-in that made them; panel tokens and SSO-made tokens (break glass) do not open hosts', async () => {
  const tokenHost = buildHost('app.example.com', { policy: 'two_factor', allowTokens: true });
  const api = (token: Partial<NonNullable<ReturnType<Lookups['token']>>>, sso = true): Lookups => ({
    ...lookups([tokenHost]),
    token: () => ({ id: 9, userId: 7, hosts: [], expiresAt: null, factors: 2, origin: 'operator', adminScope: false, ...token }),
    ssoEnabled: () => sso,
  });
  const t = buildTarget({ authorization: 'Bearer argos_x', clientKind: 'api', topLevel: false });
  assert.equal((await decide(t, api({}))).verdict.kind, 'allow');
  const oneFactor = await decide(t, api({ factors: 1, origin: 'portal' }));
  assert.notEqual(oneFactor.verdict.kind, 'allow', 'a token minted by a one-factor session does not pass two_factor');
  assert.equal((await decide(t, api({ adminScope: true }))).verdict.kind, 'login', 'a panel API token is not a visitor credential');
  assert.equal((await decide(t, api({ origin: 'sso' }, false))).verdict.kind, 'login', 'SSO-made tokens stop with the break glass');
  assert.equal((await decide(t, api({ origin: 'sso' }, true))).verdict.kind, 'allow');
});

test('decide: a deny rule on /admin also covers spellings an upstream may route the same way (case, ;params, %2F, trailing dot)', async () => {
  const host = buildHost('app.example.com', { policy: 'one_factor', rules: [rule({ policy: 'deny', paths: ['/admin'] })] });
  for (const path of ['/Admin/users', '/ADMIN', '/admin;x/users', '/admin%2Fusers', '/admin./users']) {
    const d = await decide(buildTarget({ path, sessionToken: TOKEN }), lookups([host]));
    assert.equal(d.verdict.kind, 'deny', path);
  }
  const ok = await decide(buildTarget({ path: '/administrator', sessionToken: TOKEN }), lookups([host]));
  assert.equal(ok.verdict.kind, 'allow', 'other paths keep the host policy');
  const bypass = buildHost('app.example.com', { rules: [rule({ policy: 'bypass', paths: ['/api/health'] })] });
  assert.equal((await decide(buildTarget({ path: '/API/health' }), lookups([bypass]))).verdict.kind, 'login', 'lowering rules stay exact');
});
