/**
 * The access-log ingestor over a real file and a fresh migrated database: Caddy's line format, paths without
 * query strings, first start at the end of the file, rotation (while running and while stopped), truncation,
 * and drops counted when the channel is flooded.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { openStore, type Store } from '@argos/shared/store';
import { silentLogger } from '@argos/shared/log';
import { AccessLogIngestor, parseAccessLine, POSITION_KEY } from './ingest.ts';

/** One line as Caddy 2.6 writes it (JSON encoder, unix seconds). */
function caddyLine(i: number, o: { host?: string; uri?: string; status?: number; ip?: string } = {}): string {
  return JSON.stringify({
    level: 'info',
    ts: 1_760_000_000.25 + i,
    logger: 'http.log.access.argos',
    msg: 'handled request',
    request: { remote_ip: o.ip ?? '127.0.0.1', remote_port: '40000', proto: 'HTTP/1.1', method: 'GET', host: o.host ?? 'app.example.test:8081', uri: o.uri ?? `/p/${i}?code=SECRET${i}&state=x`, headers: { Cookie: ['REDACTED'] } },
    bytes_read: 0,
    user_id: '',
    duration: 0.0042,
    size: 1234,
    status: o.status ?? 200,
    resp_headers: {},
  });
}

const lines = (from: number, n: number) => Array.from({ length: n }, (_, k) => caddyLine(from + k) + '\n').join('');

describe('access-log ingestion', () => {
  let tmp: string;
  let store: Store;
  let file: string;

  const rows = async () => (await store.db.get<{ n: number }>('SELECT count(*) AS n FROM access_log'))!.n;
  const ingestor = (opts = {}) => new AccessLogIngestor({ db: store.db, log: silentLogger, file, country: (ip) => (ip === '81.2.69.142' ? 'GB' : null), opts: { pollMs: 60_000, flushMs: 60_000, ...opts } });
  const step = async (ing: AccessLogIngestor) => {
    await ing.tick();
    await ing.flush();
  };

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-ingest-'));
    store = await openStore({ dataDir: tmp, masterKey: randomBytes(32) }, 'migrator');
    file = path.join(tmp, 'logs', 'caddy-access.log');
  });

  after(async () => {
    await store.db.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a Caddy line becomes a row: host without port, path without its query string, ms units, client_ip preferred', () => {
    const e = parseAccessLine(caddyLine(1, { host: 'App.Example.TEST:8081', uri: '/oidc/callback?code=abc&state=def#frag', status: 302, ip: '10.0.0.9' }))!;
    assert.deepEqual(e, { ts: 1_760_000_001_250, host: 'app.example.test', method: 'GET', path: '/oidc/callback', status: 302, durationMs: 4.2, bytes: 1234, ip: '10.0.0.9', country: null });
    const withClient = JSON.parse(caddyLine(2));
    withClient.request.client_ip = '81.2.69.142';
    assert.equal(parseAccessLine(JSON.stringify(withClient), (ip) => (ip === '81.2.69.142' ? 'GB' : null))!.country, 'GB');
    assert.equal(parseAccessLine('not json'), null);
    assert.equal(parseAccessLine(JSON.stringify({ level: 'info', msg: 'server running' })), null);
  });

  test('first start begins at the end; then it follows appends and a rotation, and no query string is stored', async () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, lines(0, 5)); // history from before Argos watched: not ingested
    const ing = ingestor();
    await ing.start();
    await step(ing);
    assert.equal(await rows(), 0);
    fs.appendFileSync(file, lines(100, 3));
    await step(ing);
    assert.equal(await rows(), 3);
    // Caddy rotates: the current file is renamed (and may get a last write), a new one is created.
    const rotated = path.join(path.dirname(file), 'caddy-access-2026-01-01T00-00-00.000.log');
    fs.renameSync(file, rotated);
    fs.appendFileSync(rotated, lines(200, 2));
    fs.writeFileSync(file, lines(300, 4));
    await step(ing);
    assert.equal(await rows(), 9, '3 before, 2 late lines of the rotated file, 4 in the new file');
    assert.equal(ing.rotations, 1);
    // A partial line waits for its end.
    fs.appendFileSync(file, caddyLine(400).slice(0, 50));
    await step(ing);
    assert.equal(await rows(), 9);
    fs.appendFileSync(file, caddyLine(400).slice(50) + '\n');
    await step(ing);
    assert.equal(await rows(), 10);
    const paths = await store.db.all<{ path: string }>('SELECT path FROM access_log');
    assert.ok(paths.every((p) => !p.path.includes('?') && !p.path.includes('SECRET')), 'no query string stored');
    await ing.stop();

    // While stopped: more lines, then another rotation. The restart finishes the rotated file (found by inode).
    fs.appendFileSync(file, lines(500, 2));
    fs.renameSync(file, path.join(path.dirname(file), 'caddy-access-2026-01-02T00-00-00.000.log'));
    fs.writeFileSync(file, lines(600, 1));
    const again = ingestor();
    await again.start();
    await step(again);
    assert.equal(await rows(), 13);
    // Truncated in place (copytruncate) and rewritten with less than was read: starts over at the beginning.
    fs.writeFileSync(file, caddyLine(700, { uri: '/' }) + '\n');
    await step(again);
    assert.equal(await rows(), 14);
    const pos = JSON.parse((await store.db.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [POSITION_KEY]))!.value);
    assert.equal(pos.ino, fs.statSync(file).ino);
    assert.equal(pos.offset, fs.statSync(file).size);
    await again.stop();
  });

  test('when flooded, the channel drops and counts instead of growing', async () => {
    const before = await rows();
    const ing = ingestor({ queueMax: 500, readBytes: 64 * 1024 * 1024 });
    await ing.start();
    fs.appendFileSync(file, lines(10_000, 20_000));
    await ing.tick(); // reads everything before the writer runs once
    assert.equal(ing.lines, 20_000);
    assert.equal(ing.depth, 500, 'the channel never holds more than its capacity');
    assert.equal(ing.dropped, 19_500);
    await ing.flush();
    assert.equal(ing.ingested, 500);
    assert.equal((await rows()) - before, 500);
    await ing.stop();
  });
});
