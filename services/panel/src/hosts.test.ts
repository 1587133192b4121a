/** Host editor stories: the full host form, "check before saving" (nothing saved, upstream probed), and the rules editor. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '@argos/shared/config';
import { openStore, type Store } from '@argos/shared/store';
import { CLI_ACTOR, listAudit } from '@argos/shared/audit';
import { addUser } from '@argos/shared/commands/users';
import { getHost } from '@argos/shared/repos/hosts';
import { Browser, startPanel, type Harness } from './testing.ts';

const MASTER = Buffer.alloc(32, 5);
let tmp: string;
let store: Store;
let panel: Harness;
let b: Browser;

/** A loopback port with nothing listening (bound, then released). */
const closedPort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-panel-hosts-'));
  const config = loadConfig({ ARGOS_MASTER_KEY: MASTER.toString('hex'), ARGOS_DATA_DIR: tmp, ARGOS_PORTAL_URL: 'https://auth.example.com' });
  store = await openStore({ dataDir: tmp, masterKey: MASTER }, 'migrator');
  await addUser(store.db, CLI_ACTOR, { username: 'root', password: 'root-password-1', isAdmin: true });
  panel = await startPanel(store, config);
  b = new Browser(panel.url);
  assert.equal((await b.login('root', 'root-password-1')).status, 303);
});

after(async () => {
  await panel.close();
  await store.db.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const form = (over: Record<string, string> = {}) => ({
  domain: 'media.example.com',
  upstreams: 'http://127.0.0.1:9',
  policy: 'two_factor',
  tlsMode: 'acme',
  enabled: '1',
  upstreamTlsVerify: '1',
  allowedUsers: '',
  allowedGroups: 'family',
  allowTokens: '1',
  geoMode: 'allow',
  geoCountries: 'de, fr',
  geoLan: 'allow',
  geoUnknown: 'deny',
  rateLimit: '30/s',
  rateBurst: '60',
  ...over,
});

test('when the operator checks a host before saving, then an unreachable upstream and an uncovered cookie domain are flagged and nothing is saved', async () => {
  const port = await closedPort();
  const r = await b.submit('/hosts', form({ domain: 'media.other.org', upstreams: `http://127.0.0.1:${port}`, action: 'check' }), '/hosts/new');
  assert.equal(r.status, 200);
  assert.match(r.text, /not reachable from Argos/);
  assert.match(r.text, /cookie/i);
  assert.equal(await getHost(store.db, 'media.other.org'), null, 'a check saves nothing');
  assert.equal(panel.applied.length, 0);
});

test('when the operator saves the full host form, then every field is stored, and invalid values are shown next to their fields', async () => {
  const bad = await b.submit('/hosts', form({ geoCountries: 'Germany', rateLimit: 'fast' }), '/hosts/new');
  assert.equal(bad.status, 400);
  assert.match(bad.text, /not a two-letter ISO country code/);
  assert.match(bad.text, /Rate limit must look like/);
  const ok = await b.submit('/hosts', form(), '/hosts/new');
  assert.equal(ok.status, 303, ok.text);
  const h = (await getHost(store.db, 'media.example.com'))!;
  assert.deepEqual([h.policy, h.allowTokens, h.allowBasic, h.geoMode, h.geoCountries, h.geoUnknown, h.rateLimit, h.rateWindowS, h.rateBurst], ['two_factor', true, false, 'allow', ['DE', 'FR'], 'deny', 30, 1, 60]);
  assert.equal(panel.applied.length, 1, 'saving pushes the config to Caddy');
});

test('when the operator adds and removes rules in the editor, then they are stored in order and audited; a bad path is refused', async () => {
  const page = '/hosts/media.example.com';
  const bad = await b.submit(`${page}/rules`, { policy: 'bypass', paths: '/api/../admin', methods: '', networks: '' }, page);
  assert.equal(bad.status, 400);
  assert.match(bad.text, /must not contain \. or \.\. segments/);
  assert.equal((await b.submit(`${page}/rules`, { policy: 'bypass', paths: '/api/health', methods: 'GET, HEAD', networks: '' }, page)).status, 303);
  assert.equal((await b.submit(`${page}/rules`, { policy: 'deny', paths: '/admin/**', methods: '', networks: '192.168.1.0/24' }, page)).status, 303);
  let h = (await getHost(store.db, 'media.example.com'))!;
  assert.deepEqual(h.rules.map((r) => [r.policy, r.paths, r.methods, r.networks]), [
    ['bypass', ['/api/health'], ['GET', 'HEAD'], []],
    ['deny', ['/admin/**'], [], ['192.168.1.0/24']],
  ]);
  assert.equal((await b.submit(`${page}/rules/${h.rules[0]!.id}/delete`, {}, page)).status, 303);
  h = (await getHost(store.db, 'media.example.com'))!;
  assert.deepEqual(h.rules.map((r) => r.policy), ['deny']);
  const audit = await listAudit(store.db, { action: 'host.rule' });
  assert.deepEqual(audit.map((a) => a.action).sort(), ['host.rule.create', 'host.rule.create', 'host.rule.delete']);
});
