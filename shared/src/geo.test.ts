import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GeoDb, bundledGeoFile, countryOf, LAN } from './geo.ts';

test('geo: known addresses, IPv4-mapped IPv6, LAN pseudo-country, reserved and invalid addresses', async () => {
  const g = await GeoDb.open(bundledGeoFile());
  const cases: [string, string | null][] = [
    ['8.8.8.8', 'US'],
    ['81.2.69.142', 'GB'],
    ['::ffff:81.2.69.142', 'GB'], // the databases answer null for the mapped form: normalised first
    ['[::ffff:8.8.8.8]', 'US'],
    ['2001:4860:4860::8888', 'US'],
    ['10.1.2.3', LAN],
    ['172.20.0.5', LAN],
    ['192.168.178.20', LAN],
    ['127.0.0.1', LAN],
    ['169.254.10.1', LAN],
    ['100.64.12.1', LAN], // CGNAT
    ['::1', LAN],
    ['fe80::1%eth0', LAN],
    ['fd12:3456::1', LAN], // ULA
    ['203.0.113.7', null], // TEST-NET: the bundled data says AU, which is wrong
    ['2001:db8::1', null], // documentation prefix (data says JP)
    ['2a02:ffff::1', null], // not in the database
    ['1.2.3', null], // maxmind would answer a country for this invalid address
    ['not-an-ip', null],
    ['', null],
  ];
  for (const [ip, want] of cases) assert.equal(g.country(ip), want, ip);
});

test('geo: both record shapes (flat DB-IP / ip-location-db, nested MaxMind)', () => {
  assert.equal(countryOf({ country_code: 'de' }), 'DE');
  assert.equal(countryOf({ country: { iso_code: 'FR', names: { en: 'France' } }, continent: { code: 'EU' } }), 'FR');
  assert.equal(countryOf({ registered_country: { iso_code: 'NL' } }), 'NL');
  assert.equal(countryOf({ country_code: 'ZZZ' }), null);
  assert.equal(countryOf(null), null);
  assert.equal(countryOf('US'), null);
});

test('geo: an IPv4-only database is never asked about IPv6 (it would answer garbage)', async () => {
  const g = await GeoDb.open(bundledGeoFile().replace(/\.mmdb$/, '-ipv4.mmdb'));
  assert.equal(g.info().ipVersion, 4);
  assert.equal(g.country('8.8.8.8'), 'US');
  assert.equal(g.country('2001:4860:4860::8888'), null);
});

test('geo: info names the database, its build date and the attribution its licence requires', async () => {
  const g = await GeoDb.open(bundledGeoFile());
  const i = g.info();
  assert.equal(i.databaseType, 'country ipvAll');
  assert.match(i.buildEpoch, /^\d{4}-\d\d-\d\dT/);
  assert.equal(i.attribution.licence, 'CC BY 4.0');
  assert.match(i.attribution.url, /nro\.net/);
});

test('geo: lookup cache is bounded', async () => {
  const g = await GeoDb.open(bundledGeoFile(), { cacheSize: 1000 });
  for (let i = 0; i < 5000; i++) g.country(`${1 + (i % 200)}.${i & 255}.${(i >> 8) & 255}.1`);
  assert.ok(g.cacheSize <= 1000);
  const started = process.hrtime.bigint();
  for (let i = 0; i < 100_000; i++) g.country(`${1 + (i % 200)}.${i & 255}.${(i >> 8) & 255}.9`);
  const us = Number(process.hrtime.bigint() - started) / 1e3 / 100_000;
  console.log(`# country lookup: ${us.toFixed(2)} µs (mostly uncached)`);
});
