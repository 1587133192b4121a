/**
 * Network defences end to end: real Caddy, the real gatekeeper and panel processes, a real CrowdSec LAPI.
 * - Country rules: /verify called by the trusted proxy (127.0.0.1) with the client in X-Forwarded-For (inside and
 *   outside the country, IPv6, IPv4-mapped, LAN, unknown); an untrusted peer (127.0.0.2) is refused and its
 *   X-Forwarded-For ignored; through Caddy a spoofed X-Forwarded-For changes nothing.
 * - Rate limits through Caddy: client sockets bound to different 127.0.0.x addresses.
 * - CrowdSec: cscli decisions enforced through Caddy and lifted; failed portal logins pushed to the LAPI as a ban
 *   and enforced; the auth-failure log replayed through a real CrowdSec agent with Argos's parser and scenario.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createArgos, portalLogin, rawRequest, startEcho, waitFor, type Argos, type RawResponse } from '../lib/argos.ts';
import { startLapi, type Lapi } from '../lib/crowdsec.ts';

const API = { Accept: 'application/json' };

describe('network defences: geo-IP, rate buckets, CrowdSec', () => {
  let argos: Argos;
  let lapi: Lapi;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  const via = (host: string, localAddress: string, headers: Record<string, string> = API) => argos.viaCaddy(`${host}:${argos.ports.caddy}`, '/', { headers, localAddress });

  /** /verify as Caddy would call it, from `peer`, for a client `xff`. */
  const verify = (host: string, xff: string, peer = '127.0.0.1'): Promise<RawResponse> =>
    rawRequest({
      port: argos.ports.gatekeeper,
      path: '/verify',
      localAddress: peer,
      headers: { ...API, 'X-Forwarded-Method': 'GET', 'X-Forwarded-Proto': 'http', 'X-Forwarded-Host': host, 'X-Forwarded-Uri': '/', 'X-Forwarded-For': xff },
    });

  before(async () => {
    lapi = await startLapi();
    echo = await startEcho();
    argos = await createArgos({ ARGOS_TRUSTED_PROXIES: '127.0.0.1/32', ARGOS_CROWDSEC_URL: lapi.url, ARGOS_CROWDSEC_KEY: lapi.bouncerKey });
    const ok = (r: { code: number; stdout: string; stderr: string }) => assert.equal(r.code, 0, r.stderr + r.stdout);
    const up = `http://127.0.0.1:${echo.port}`;
    ok(argos.cli(['host', 'add', 'geo.example.test', '--upstream', up, '--tls', 'off', '--policy', 'bypass', '--geo-allow', 'US', '--geo-unknown', 'deny']));
    ok(argos.cli(['host', 'add', 'strict.example.test', '--upstream', up, '--tls', 'off', '--policy', 'bypass', '--geo-allow', 'US', '--geo-lan', 'deny']));
    ok(argos.cli(['host', 'add', 'rate.example.test', '--upstream', up, '--tls', 'off', '--policy', 'bypass', '--rate-limit', '5/min']));
    ok(argos.cli(['host', 'add', 'open.example.test', '--upstream', up, '--tls', 'off', '--policy', 'bypass']));
    ok(argos.cli(['user', 'add', 'alice', '--password-stdin'], 'wonderland-2026\n'));
    ok(argos.cli(['settings', 'set', 'crowdsec.pull_interval', '1s']));
    ok(argos.cli(['settings', 'set', 'crowdsec.machine_id', lapi.machineId]));
    ok(argos.cli(['secret', 'set', 'crowdsec.machine_password', '--stdin'], lapi.machinePassword));
    await argos.start();
    await waitFor('gatekeeper connected to CrowdSec', async () => {
      const h = JSON.parse((await rawRequest({ port: argos.ports.gatekeeper, path: '/healthz' })).body);
      return h.crowdsec?.connected === true;
    });
  });

  after(async () => {
    await argos?.stop();
    await echo?.close();
    await lapi?.close();
  });

  const countryCases: { name: string; host: string; xff: string; want: number }[] = [
    { name: 'inside the country (US, IPv4)', host: 'geo.example.test', xff: '8.8.8.8', want: 200 },
    { name: 'outside the country (GB)', host: 'geo.example.test', xff: '81.2.69.142', want: 403 },
    { name: 'inside the country over IPv6', host: 'geo.example.test', xff: '2001:4860:4860::8888', want: 200 },
    { name: 'outside the country over IPv6 (IE)', host: 'geo.example.test', xff: '2a00:1450:4001:80b::200e', want: 403 },
    { name: 'IPv4-mapped IPv6 of a GB address is still GB', host: 'geo.example.test', xff: '::ffff:81.2.69.142', want: 403 },
    { name: 'IPv4-mapped IPv6 of a US address is still US', host: 'geo.example.test', xff: '::ffff:8.8.8.8', want: 200 },
    { name: 'LAN address allowed by default (the operator at home)', host: 'geo.example.test', xff: '192.168.1.20', want: 200 },
    { name: 'LAN address denied where the host says so', host: 'strict.example.test', xff: '192.168.1.20', want: 403 },
    { name: 'CGNAT address is LAN', host: 'strict.example.test', xff: '100.64.1.2', want: 403 },
    { name: 'an address the database does not know, unknown denied', host: 'geo.example.test', xff: '2a02:ffff::1', want: 403 },
    { name: 'an address the database does not know, unknown allowed (default)', host: 'strict.example.test', xff: '2a02:ffff::1', want: 200 },
    { name: 'a chain: the trusted proxy is skipped, the client before it counts', host: 'geo.example.test', xff: '81.2.69.142, 127.0.0.1', want: 403 },
  ];
  for (const c of countryCases) {
    test(`country allow-list (US): ${c.name} → ${c.want}`, async () => {
      const r = await verify(c.host, c.xff);
      assert.equal(r.status, c.want, r.body);
    });
  }

  test('an untrusted peer is refused and its X-Forwarded-For is ignored (it cannot claim a US address)', async () => {
    const r = await verify('geo.example.test', '8.8.8.8', '127.0.0.2');
    assert.equal(r.status, 403);
    const trusted = await verify('geo.example.test', '8.8.8.8', '127.0.0.1');
    assert.equal(trusted.status, 200, 'the same request from the trusted proxy passes');
  });

  test('through Caddy a client-supplied X-Forwarded-For is replaced: the real peer (LAN) is judged', async () => {
    const r = await via('strict.example.test', '127.0.0.9', { ...API, 'X-Forwarded-For': '8.8.8.8' });
    assert.equal(r.status, 403, 'LAN denied: the spoofed US address was not believed');
    assert.equal(echo.requests.length, 0, 'the upstream saw nothing');
    const lanOk = await via('geo.example.test', '127.0.0.9', { ...API, 'X-Forwarded-For': '81.2.69.142' });
    assert.equal(lanOk.status, 200, 'and a spoofed GB address does not get a LAN client blocked');
  });

  test('argos check shows the country, ban and bucket verdicts', () => {
    const r = argos.cli(['check', '--host', 'geo.example.test', '--uri', '/', '--ip', '81.2.69.142', '--accept', 'application/json', '--json']);
    const j = JSON.parse(r.stdout);
    assert.equal(j.country, 'GB');
    assert.equal(j.reason, 'geo_not_allowed');
    assert.equal(j.status, 403);
    const t = argos.cli(['check', '--host', 'open.example.test', '--uri', '/', '--ip', '8.8.8.8']);
    assert.match(t.stdout, /ban\s+continue\s+no ban/);
    assert.match(t.stdout, /rate\s+continue\s+within limit \(50\/s, burst 200\)/, 'the global default applies to hosts without their own limit');
    assert.match(t.stdout, /country: US/);
  });

  test('rate limit through Caddy: a burst above the limit gets 429 with a correct Retry-After; another client is unaffected', async () => {
    const started = Date.now();
    for (let i = 0; i < 5; i++) assert.equal((await via('rate.example.test', '127.0.0.3')).status, 200, `request ${i + 1} of the burst`);
    const limited = await via('rate.example.test', '127.0.0.3');
    assert.equal(limited.status, 429);
    const retry = Number(limited.headers['retry-after']);
    const elapsedS = (Date.now() - started) / 1000;
    // 5/min: one token every 12 s; the first came back 12 s after the first request.
    assert.ok(retry >= Math.floor(12 - elapsedS) && retry <= 12, `Retry-After ${retry} for ~${(12 - elapsedS).toFixed(1)} s left`);
    assert.equal(JSON.parse(limited.body).retry_after, retry);
    assert.equal((await via('rate.example.test', '127.0.0.4')).status, 200, 'another client address has its own bucket');
    assert.equal((await via('open.example.test', '127.0.0.3')).status, 200, 'and the limited client can still use other hosts');
  });

  test('the global default limit covers hosts without their own limit and the portal host', async () => {
    const set = (k: string, v: string) => assert.equal(argos.cli(['settings', 'set', k, v]).code, 0);
    set('rate.default_limit', '2/min');
    set('rate.default_burst', '2');
    try {
      await waitFor('settings reloaded', async () => {
        const statuses = [];
        for (let i = 0; i < 3; i++) statuses.push((await via('open.example.test', '127.0.0.7')).status);
        return statuses.includes(429);
      }, 10_000);
      const portal: number[] = [];
      for (let i = 0; i < 3; i++) portal.push((await argos.viaCaddy(`${argos.portalHost}:${argos.ports.caddy}`, '/login', { localAddress: '127.0.0.7', headers: API })).status);
      assert.deepEqual(portal, [200, 200, 429], 'the portal host has its own bucket under the default limit');
      assert.equal((await via('rate.example.test', '127.0.0.7')).status, 200, 'a host with its own limit is not affected');
    } finally {
      set('rate.default_limit', '50/s');
      set('rate.default_burst', '200');
    }
    await waitFor('default restored', async () => (await via('open.example.test', '127.0.0.7')).status === 200, 5000);
  });

  test('CrowdSec: a cscli decision is enforced through Caddy within the pull interval and lifted after delete', async () => {
    assert.equal((await via('open.example.test', '127.0.0.5')).status, 200);
    lapi.cscli(['decisions', 'add', '--ip', '127.0.0.5', '--duration', '1h', '--reason', 'e2e']);
    await waitFor('banned through Caddy', async () => (await via('open.example.test', '127.0.0.5')).status === 403, 5000);
    assert.equal((await via('open.example.test', '127.0.0.8')).status, 200, 'others unaffected');
    const portal = await argos.viaCaddy(`${argos.portalHost}:${argos.ports.caddy}`, '/login', { localAddress: '127.0.0.5', headers: API });
    assert.equal(portal.status, 403, 'the portal is closed to the banned client too');
    const h = JSON.parse((await rawRequest({ port: argos.ports.gatekeeper, path: '/healthz' })).body);
    assert.equal(h.crowdsec.stale, false);
    assert.ok(h.crowdsec.decisions >= 1);
    const metrics = (await rawRequest({ port: argos.ports.gatekeeper, path: '/metrics' })).body;
    assert.match(metrics, /argos_crowdsec_decisions [1-9]/);
    lapi.cscli(['decisions', 'delete', '--ip', '127.0.0.5']);
    await waitFor('lifted', async () => (await via('open.example.test', '127.0.0.5')).status === 200, 5000);
  });

  test('attack: repeated failed portal logins end as a CrowdSec decision that the gatekeeper then enforces', async () => {
    const attacker = '127.0.0.6';
    for (let i = 0; i < 5; i++) {
      const r = await portalLogin(argos, 'alice', `guess-${i}`, `http://open.example.test:${argos.ports.caddy}/`, attacker);
      assert.equal(r.status, 401);
    }
    await waitFor('the ban pushed to the LAPI', async () => lapi.decisions().some((d) => d.value === attacker && d.origin === 'argos'), 10_000);
    const d = lapi.decisions().find((x) => x.value === attacker)!;
    assert.equal(d.scenario, 'argos/login-bruteforce');
    assert.equal(d.type, 'ban');
    await waitFor('the gatekeeper enforces it as a CrowdSec decision', async () => {
      const c = JSON.parse(argos.cli(['check', '--host', 'open.example.test', '--uri', '/', '--ip', attacker, '--json']).stdout);
      return c.reason === 'crowdsec_ban';
    }, 5000);
    // `argos check` asks the LAPI itself; the gatekeeper's bouncer sees the decision on its next pull. Until then the
    // attacker meets the gatekeeper's own regulation ban (429), so wait for the CrowdSec answer (403) to take over.
    await waitFor('the gatekeeper answers 403 (CrowdSec) instead of 429 (regulation)', async () => (await via('open.example.test', attacker)).status === 403, 5000);
    await waitFor('the bouncer has it in memory', async () => {
      const h = JSON.parse((await rawRequest({ port: argos.ports.gatekeeper, path: '/healthz' })).body);
      return h.crowdsec.decisions >= 1 && h.crowdsec.push.sent >= 1;
    }, 5000);
  });

  test('the auth-failure log feeds a real CrowdSec agent: Argos parser + scenario ban the brute-forcer', async () => {
    const file = path.join(argos.env.ARGOS_DATA_DIR!, 'logs', 'argos-auth.log');
    await waitFor('auth log written', async () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('127.0.0.6')).length >= 5, 5000);
    const line = JSON.parse(fs.readFileSync(file, 'utf8').split('\n').find((l) => l.includes('127.0.0.6'))!);
    assert.deepEqual(Object.keys(line).sort(), ['event', 'service', 'source_ip', 'time', 'user'].sort());
    assert.equal(line.event, 'auth_failure');
    assert.ok(!JSON.stringify(line).includes('guess-'), 'never a password in the log');
    // One address trying many users: add a few more lines from another address to the same log (what a stuffing attack writes).
    for (let i = 0; i < 6; i++) await portalLogin(argos, `user${i}`, 'x', `http://open.example.test:${argos.ports.caddy}/`, '127.0.0.10').catch(() => undefined);
    await waitFor('stuffing lines written', async () => fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"127.0.0.10"')).length >= 5, 5000);
    const out = lapi.agentReplay(file, 'argos');
    assert.match(out, /Ip 127\.0\.0\.6 performed 'argos\/auth-bruteforce'/, out.slice(-2000));
    assert.match(out, /Ip 127\.0\.0\.10 performed 'argos\/auth-(bruteforce|user-enum)'/);
    await waitFor('agent decision in the LAPI', async () => lapi.decisions().some((d) => d.value === '127.0.0.10' && d.origin === 'crowdsec'), 5000);
    await waitFor('and enforced through Caddy', async () => (await via('open.example.test', '127.0.0.10')).status === 403, 5000);
  });

  test("Caddy's JSON access log (acquisition type caddy) feeds the agent too: a scanner probing paths is banned", async () => {
    const scanner = '127.0.0.11';
    for (let i = 0; i < 12; i++) {
      // (the packaged caddy-logs parser drops lines without a User-Agent; scanners send one)
      const r = await argos.viaCaddy(`unknown.example.test:${argos.ports.caddy}`, `/probe-${i}.php`, { localAddress: scanner, headers: { ...API, 'User-Agent': 'Mozilla/5.0 (compatible; probe)' } });
      assert.equal(r.status, 403, 'unknown hosts are refused by the gatekeeper');
    }
    const file = path.join(argos.env.ARGOS_DATA_DIR!, 'logs', 'caddy-access.log');
    await waitFor('access log written', async () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('/probe-')).length >= 12, 5000);
    const out = lapi.agentReplay(file, 'caddy');
    assert.match(out, /Ip 127\.0\.0\.11 performed 'crowdsecurity\/http-probing'/, out.slice(-2000));
    await waitFor('and enforced through Caddy', async () => (await via('open.example.test', scanner)).status === 403, 5000);
  });
});
