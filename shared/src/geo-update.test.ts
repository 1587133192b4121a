/**
 * The geo updater against a local HTTP server (127.0.0.1) serving a real gzipped mmdb, plus the files an attacker
 * or a broken mirror could serve: truncated, not gzip/mmdb at all, a gzip bomb, a non-country database.
 * Each failure keeps the current database and records the error; a success swaps the file and the gatekeeper-side
 * reloader (GeoDb) picks it up without restart.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { openStore } from './store.ts';
import type { Database } from './db/sqlite.ts';
import { listAudit } from './audit.ts';
import { GeoDb, bundledGeoFile, downloadedGeoFile } from './geo.ts';
import { candidateUrls, geoUpdateStatus, runGeoUpdate, scheduleGeoUpdates } from './geo-update.ts';

const V4_FILE = bundledGeoFile().replace(/\.mmdb$/, '-ipv4.mmdb');
const NOW = new Date(Date.UTC(2026, 11, 15)); // December 2026
const files = new Map<string, Buffer | { status: number }>();
let server: http.Server;
let base: string;
let db: Database;
let dataDir: string;
const requests: string[] = [];

const sha = (f: string) => (fs.existsSync(f) ? createHash('sha256').update(fs.readFileSync(f)).digest('hex') : null);

before(async () => {
  const v4 = fs.readFileSync(V4_FILE);
  const good = zlib.gzipSync(v4);
  files.set('/dbip-country-lite-2026-12.mmdb.gz', good);
  files.set('/fallback/dbip-country-lite-2026-12.mmdb.gz', { status: 404 });
  files.set('/fallback/dbip-country-lite-2026-11.mmdb.gz', good);
  files.set('/truncated.mmdb.gz', good.subarray(0, Math.floor(good.length / 2)));
  files.set('/text.mmdb.gz', zlib.gzipSync(Buffer.from('<html><body>Download limit reached, please come back tomorrow</body></html>\n'.repeat(50))));
  files.set('/random.mmdb.gz', zlib.gzipSync(randomBytes(200_000)));
  files.set('/bomb.mmdb.gz', zlib.gzipSync(Buffer.alloc(65 * 1024 * 1024 + 1), { level: 9 }));
  const asn = Buffer.from(v4);
  const at = asn.lastIndexOf(Buffer.from('country ipv4'));
  assert.ok(at > 0, 'metadata type found in the fixture');
  asn.write('network ipv4', at, 'latin1'); // same length: still a valid mmdb, but not a country database
  files.set('/asn.mmdb.gz', zlib.gzipSync(asn));
  files.set('/error.mmdb.gz', { status: 500 });
  files.set('/plain.mmdb', fs.readFileSync(bundledGeoFile()));
  server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const f = files.get(req.url ?? '');
    if (!f) return void res.writeHead(404).end('not found');
    if (!Buffer.isBuffer(f)) return void res.writeHead(f.status).end('error');
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': f.length }).end(f);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-geo-'));
  ({ db } = await openStore({ dataDir, masterKey: Buffer.alloc(32, 7) }, 'migrator'));
});

after(async () => {
  await db?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('geo update: URL template for this month, then the previous one', () => {
  assert.deepEqual(candidateUrls('https://x.test/dbip-country-lite-{YYYY}-{MM}.mmdb.gz', new Date(Date.UTC(2027, 0, 2))), [
    'https://x.test/dbip-country-lite-2027-01.mmdb.gz',
    'https://x.test/dbip-country-lite-2026-12.mmdb.gz',
  ]);
  assert.deepEqual(candidateUrls('https://x.test/country.mmdb', NOW), ['https://x.test/country.mmdb']);
});

test('geo update: before any download the bundled database answers, with its attribution', async () => {
  const geo = await GeoDb.openDefault(dataDir);
  assert.equal(geo.info().source, 'bundled');
  assert.match(geo.info().attribution.text, /NRO/);
  assert.equal(geo.country('2001:4860:4860::8888'), 'US');
  assert.equal(await geo.checkForUpdate(), false, 'nothing downloaded yet');
});

test('geo update: a real gzipped database is downloaded, validated, swapped atomically, and the gatekeeper reloads it', async () => {
  const geo = await GeoDb.openDefault(dataDir);
  const r = await runGeoUpdate(db, { dataDir, url: `${base}/dbip-country-lite-{YYYY}-{MM}.mmdb.gz`, now: NOW });
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.url, `${base}/dbip-country-lite-2026-12.mmdb.gz`);
  assert.equal(r.databaseType, 'country ipv4');
  assert.equal(sha(downloadedGeoFile(dataDir)), sha(V4_FILE), 'the unpacked file is in place');
  assert.deepEqual(
    fs.readdirSync(path.dirname(downloadedGeoFile(dataDir))).filter((f) => f.endsWith('.tmp')),
    [],
    'no temp file left behind',
  );
  assert.equal(await geo.checkForUpdate(), true, 'the reloader sees the new file');
  assert.equal(geo.info().source, 'downloaded');
  assert.equal(geo.info().databaseType, 'country ipv4');
  assert.equal(geo.country('8.8.8.8'), 'US');
  assert.equal(geo.country('2001:4860:4860::8888'), null, 'an IPv4-only database is never asked about IPv6 (it would answer garbage)');
  const st = await geoUpdateStatus(db);
  assert.ok(st.lastUpdateAt && !st.lastError);
  assert.equal(st.lastSource, r.url);
  assert.equal((await listAudit(db, { action: 'geo.update' }))[0]?.action, 'geo.update');
  assert.equal(await geo.checkForUpdate(), false, 'unchanged file: no reload');
});

test('geo update: falls back to the previous month on 404', async () => {
  const r = await runGeoUpdate(db, { dataDir, url: `${base}/fallback/dbip-country-lite-{YYYY}-{MM}.mmdb.gz`, now: NOW });
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.url, `${base}/fallback/dbip-country-lite-2026-11.mmdb.gz`);
  assert.ok(requests.includes('/fallback/dbip-country-lite-2026-12.mmdb.gz'), 'this month was tried first');
});

const failures: { name: string; path: string; error: RegExp }[] = [
  { name: 'truncated gzip', path: '/truncated.mmdb.gz', error: /cannot gunzip.*truncated or corrupt/ },
  { name: 'a gzipped HTML/text page (wrong type)', path: '/text.mmdb.gz', error: /not a readable mmdb database/ },
  { name: 'a gzipped random blob', path: '/random.mmdb.gz', error: /not a readable mmdb database/ },
  { name: 'a gzip bomb (65 MB unpacked from a few KB)', path: '/bomb.mmdb.gz', error: /over the 67108864-byte limit/ },
  { name: 'a valid mmdb that is not a country database', path: '/asn.mmdb.gz', error: /database type is "network ipv4", not a country database/ },
  { name: 'HTTP 500 from the mirror', path: '/error.mmdb.gz', error: /HTTP 500/ },
  { name: 'HTTP 404 for both months', path: '/missing-{YYYY}-{MM}.mmdb.gz', error: /HTTP 404/ },
];

for (const f of failures) {
  test(`geo update: ${f.name} is refused, the current database stays, the error is recorded`, async () => {
    const geo = await GeoDb.openDefault(dataDir);
    const before = sha(downloadedGeoFile(dataDir));
    assert.ok(before, 'a database from the earlier download is in place');
    const r = await runGeoUpdate(db, { dataDir, url: `${base}${f.path}`, now: NOW });
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.error : '', f.error);
    assert.equal(sha(downloadedGeoFile(dataDir)), before, 'file untouched');
    assert.equal(await geo.checkForUpdate(), false, 'nothing to reload');
    assert.equal(geo.country('81.2.69.142'), 'GB', 'lookups keep working');
    const st = await geoUpdateStatus(db);
    assert.match(st.lastError ?? '', f.error);
    const audit = (await listAudit(db, { action: 'geo.update.failed' }))[0];
    assert.ok(audit && JSON.parse(audit.details).error.match(f.error), 'audited as geo.update.failed');
  });
}

test('geo update: an oversized download is cut off at the compressed limit (Content-Length or streamed bytes)', async () => {
  const r = await runGeoUpdate(db, { dataDir, url: `${base}/plain.mmdb`, now: NOW, maxBytes: 1_000_000, maxCompressedBytes: 1_000_000 });
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.error : '', /over the 1000000-byte limit/);
});

test('geo update: an uncompressed .mmdb URL works too, and the next success clears the error', async () => {
  const geo = await GeoDb.openDefault(dataDir);
  const r = await runGeoUpdate(db, { dataDir, url: `${base}/plain.mmdb`, now: NOW });
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(await geo.checkForUpdate(), true);
  assert.equal(geo.country('2001:4860:4860::8888'), 'US', 'the dual-stack database answers IPv6 again');
  assert.equal((await geoUpdateStatus(db)).lastError, null);
});

test('geo reload: a corrupt file copied into place by hand is refused; the reader in memory stays', async () => {
  const geo = await GeoDb.openDefault(dataDir);
  const type = geo.info().databaseType;
  fs.writeFileSync(downloadedGeoFile(dataDir), randomBytes(4096));
  assert.equal(await geo.checkForUpdate(), false);
  assert.equal(geo.info().databaseType, type);
  assert.equal(geo.country('81.2.69.142'), 'GB');
  const fresh = await GeoDb.openDefault(dataDir);
  assert.equal(fresh.info().source, 'bundled', 'a restart with a corrupt download falls back to the bundled database');
});

test('geo schedule: runs when due and auto-update is on, backs off after a failure, does nothing when off', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-geo-sched-'));
  const s = await openStore({ dataDir: dir, masterKey: Buffer.alloc(32, 8) }, 'migrator');
  try {
    let settings = { 'geo.auto_update': false, 'geo.update_url': `${base}/error.mmdb.gz` };
    let t = NOW.getTime();
    const sched = scheduleGeoUpdates({ db: s.db, dataDir: dir, settings: () => settings, now: () => t, checkEveryMs: 3600_000 });
    assert.equal(await sched.checkNow(), null, 'off: nothing');
    settings = { ...settings, 'geo.auto_update': true };
    const first = await sched.checkNow();
    assert.equal(first?.ok, false);
    t += 3600_000;
    assert.equal(await sched.checkNow(), null, 'backs off for a day after a failure');
    settings = { ...settings, 'geo.update_url': `${base}/dbip-country-lite-{YYYY}-{MM}.mmdb.gz` };
    t += 86_400_000;
    assert.equal((await sched.checkNow())?.ok, true);
    t += 86_400_000;
    assert.equal(await sched.checkNow(), null, 'not due again until a month has passed');
    t += 30 * 86_400_000;
    assert.equal((await sched.checkNow())?.ok, true);
    sched.stop();
  } finally {
    await s.db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
