/**
 * Secrets, backups, restore and rotation with the real services running behind real Caddy:
 * - a restore while the gatekeeper keeps answering a request loop through Caddy (the services switch in place);
 * - known secret values never appear in service logs, API responses, exports or backup metadata;
 * - a hostile archive through the CLI is refused with the live database byte-identical;
 * - a master-key rotation stops both services with a message; the old key is refused at startup, the new one works.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { readTar, tarEnd, tarHeader, tarPadding } from '@argos/shared/tar';
import { createArgos, startEcho, waitFor, ROOT, TSX, type Argos, type CliResult } from '../lib/argos.ts';

const ARGOS_BIN = path.join(ROOT, 'services/panel/bin/argos.mjs');
const SMTP_SECRET = 'smtp-Pa55-7f3c9e1d-never-shown';
const HOOK_SECRET = 'hook-Tok3n-b81d22aa-never-shown';
const OP = { username: 'operator', password: 'operator-password-1' };

/** The CLI without blocking the event loop (the request loop keeps running meanwhile). */
function cliAsync(a: Argos, args: string[], extraEnv: Record<string, string> = {}, stdin = ''): Promise<CliResult & { ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ARGOS_BIN, ...args], { env: { ...a.env, ...extraEnv }, cwd: a.dataDir, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end(stdin);
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr, ms: Date.now() - t0 }));
  });
}

/** A panel client: cookie jar, sign-in, re-authentication, JSON with the CSRF header. */
class Panel {
  private jar = new Map<string, string>();
  constructor(readonly base: string) {}

  async req(
    method: string,
    p: string,
    o: { form?: Record<string, string>; json?: unknown; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = { ...o.headers };
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (o.form) [body, headers['content-type']] = [new URLSearchParams(o.form).toString(), 'application/x-www-form-urlencoded'];
    if (o.json !== undefined) [body, headers['content-type']] = [JSON.stringify(o.json), 'application/json'];
    const res = await fetch(this.base + p, { method, headers, body, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const pair = c.split(';')[0]!;
      const eq = pair.indexOf('=');
      if (/max-age=0/i.test(c)) this.jar.delete(pair.slice(0, eq));
      else this.jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return { status: res.status, text: await res.text() };
  }

  private async csrf(p: string): Promise<string> {
    const m = /name="_csrf" value="([^"]+)"/.exec((await this.req('GET', p)).text);
    assert.ok(m, `no CSRF field on ${p}`);
    return m[1]!;
  }

  async signIn(username: string, password: string): Promise<void> {
    const r = await this.req('POST', '/login', { form: { _csrf: await this.csrf('/login'), username, password, next: '/' } });
    assert.equal(r.status, 303, `panel sign-in: ${r.status}`);
    const re = await this.req('POST', '/reauth', { form: { _csrf: await this.csrf('/reauth?next=%2F'), password, next: '/' } });
    assert.equal(re.status, 303, `re-authentication: ${re.status}`);
  }

  async api(method: string, p: string, json?: unknown): Promise<{ status: number; text: string }> {
    const token = (JSON.parse((await this.req('GET', '/api/v1/session')).text) as { csrfToken: string }).csrfToken;
    return this.req(method, p, { json, headers: { 'x-csrf-token': token } });
  }
}

describe('backups, restore and rotation with the services running', () => {
  let argos: Argos;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let totpSeed = '';
  const app = () => `app.example.test:${argos.ports.caddy}`;

  before(async () => {
    echo = await startEcho();
    argos = await createArgos({ ARGOS_TRUSTED_PROXIES: '127.0.0.1/32', ARGOS_LOG_LEVEL: 'debug' });
    const ok = (r: CliResult) => assert.equal(r.code, 0, r.stderr);
    ok(
      argos.cli([
        'host',
        'add',
        'app.example.test',
        '--upstream',
        `http://127.0.0.1:${echo.port}`,
        '--tls',
        'off',
        '--policy',
        'bypass',
        '--rate-limit',
        '100000/s',
        '--rate-burst',
        '100000',
      ]),
    );
    ok(argos.cli(['user', 'add', 'alice', '--password-stdin'], 'alice-password-1\n'));
    ok(argos.cli(['admin', 'create', OP.username, '--password-stdin'], `${OP.password}\n`));
    ok(argos.cli(['secret', 'set', 'smtp.password', '--stdin'], SMTP_SECRET));
    const enroll = argos.cli(['user', 'totp', 'enroll', 'alice', '--json']);
    ok(enroll);
    totpSeed = (JSON.parse(enroll.stdout) as { secret: string }).secret;
    assert.match(totpSeed, /^[A-Z2-7]{16,}$/);
    await argos.start();
  });

  after(async () => {
    await argos?.stop();
    await echo?.close();
  });

  test('a restore while the gatekeeper serves traffic through Caddy: requests keep being answered, the services switch in place', async (t) => {
    const made = await cliAsync(argos, ['backup', 'create', '--json']);
    assert.equal(made.code, 0, made.stderr);
    const backup = (JSON.parse(made.stdout) as { name: string }).name;
    assert.equal(fs.statSync(path.join(argos.env.ARGOS_DATA_DIR!, 'backups', backup)).mode & 0o777, 0o600);
    assert.equal(
      (await cliAsync(argos, ['host', 'add', 'later.example.test', '--upstream', `http://127.0.0.1:${echo.port}`, '--tls', 'off', '--policy', 'bypass'])).code,
      0,
    );
    await waitFor('the later host served', async () => (await argos.viaCaddy(`later.example.test:${argos.ports.caddy}`, '/')).status === 200, 15_000);

    const samples: Array<{ t: number; status: number; ms: number }> = [];
    let running = true;
    const loop = async () => {
      while (running) {
        const t0 = Date.now();
        let status: number;
        try {
          status = (await argos.viaCaddy(app(), '/ping', { headers: { Accept: 'application/json' } })).status;
        } catch {
          status = -1; // connection error
        }
        samples.push({ t: t0, status, ms: Date.now() - t0 });
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    await new Promise((r) => setTimeout(r, 1000));
    const restore = await cliAsync(argos, ['backup', 'restore', backup, '--yes']);
    const restoredAt = Date.now();
    await new Promise((r) => setTimeout(r, 2500));
    running = false;
    await Promise.all(loops);

    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stdout, /Restored .*safety backup/s);
    const bad = samples.filter((s) => s.status >= 500 || s.status <= 0);
    const window = bad.length ? Math.max(...bad.map((s) => s.t + s.ms)) - Math.min(...bad.map((s) => s.t)) : 0;
    const during = samples.filter((s) => s.t >= restoredAt - restore.ms && s.t <= restoredAt);
    t.diagnostic(
      `restore took ${restore.ms} ms (CLI process, incl. start-up); ${samples.length} requests, ${during.length} during the restore; ` +
        `5xx/errors: ${bad.length}, 5xx window: ${window} ms; slowest answer ${Math.max(...samples.map((s) => s.ms))} ms; ` +
        `statuses ${JSON.stringify(samples.reduce<Record<number, number>>((m, s) => ((m[s.status] = (m[s.status] ?? 0) + 1), m), {}))}`,
    );
    assert.ok(samples.length > 100, 'the loop ran');
    assert.ok(during.length > 0, 'requests were in flight during the restore');
    assert.deepEqual(bad, [], 'no 5xx and no connection error at any time');
    assert.ok(samples.every((s) => s.status === 200));

    // Both services switched to the restored content in place: the host added after the backup is gone, and nobody restarted.
    await waitFor(
      'the restored state in the gatekeeper',
      async () => (await argos.viaCaddy(`later.example.test:${argos.ports.caddy}`, '/')).status === 403,
      10_000,
    );
    assert.equal((await argos.viaCaddy(app(), '/')).status, 200);
    assert.doesNotMatch(argos.logs(), /process exited/);
    await waitFor('both services noticed the restore', async () => (argos.logs().match(/database restored from a backup/g) ?? []).length >= 2, 10_000);
    const list = await cliAsync(argos, ['backup', 'list', '--json']);
    assert.ok(
      (JSON.parse(list.stdout) as { backups: Array<{ kind: string }> }).backups.some((b) => b.kind === 'safety'),
      'the safety backup is listed',
    );
    assert.equal((await cliAsync(argos, ['audit', 'verify'])).code, 0, 'the restored audit chain verifies');
  });

  test('a hostile archive through the CLI is refused, nothing is written, the live data is unchanged', async () => {
    // (Byte-identity of the database file under hostile archives is proven in shared/src/backup.test.ts, where no
    // service writes; here the gatekeeper keeps writing its decision log, so the content is compared instead.)
    const evil = path.join(argos.dataDir, 'evil.tar.gz');
    const payload = Buffer.from('pwned');
    fs.writeFileSync(
      evil,
      zlib.gzipSync(Buffer.concat([tarHeader({ name: '../../escaped.txt', size: payload.length }), payload, tarPadding(payload.length), tarEnd()])),
    );
    const state = async () => [
      (await cliAsync(argos, ['host', 'list', '--json'])).stdout,
      (await cliAsync(argos, ['audit', 'list', '--action', 'backup', '--json'])).stdout,
    ];
    const before = await state();
    const r = await cliAsync(argos, ['backup', 'restore', evil, '--yes']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /REFUSED: .*climbs out of the archive.*\nThe live database was not changed\./s);
    assert.equal(fs.existsSync(path.join(argos.env.ARGOS_DATA_DIR!, '..', '..', 'escaped.txt')), false);
    assert.equal(fs.existsSync(path.join(argos.env.ARGOS_DATA_DIR!, '..', 'escaped.txt')), false);
    assert.deepEqual(
      fs.readdirSync(argos.env.ARGOS_DATA_DIR!).filter((n) => n.startsWith('.')),
      [],
      'no temporary folder left',
    );
    assert.deepEqual(await state(), before, 'hosts and the backup trail are unchanged');
  });

  test('known secret values never appear in logs, API responses, exports or backup metadata', async () => {
    const panel = new Panel(`http://127.0.0.1:${argos.ports.panel}`);
    await panel.signIn(OP.username, OP.password);
    const seen: Record<string, string> = {};
    const put = await panel.api('PUT', '/api/v1/secrets/webhook.token', { value: HOOK_SECRET });
    assert.equal(put.status, 200, put.text);
    seen['PUT /api/v1/secrets/webhook.token'] = put.text;
    const form = await panel.req('GET', '/secrets');
    assert.equal(form.status, 200);
    seen['GET /secrets'] = form.text;
    for (const p of [
      '/api/v1/secrets',
      '/api/v1/users',
      '/api/v1/users/alice',
      '/api/v1/settings',
      '/api/v1/audit?limit=10000',
      '/api/v1/backups',
      '/api/v1/session',
    ]) {
      const r = await panel.req('GET', p);
      assert.equal(r.status, 200, `${p}: ${r.status}`);
      seen[`GET ${p}`] = r.text;
    }
    assert.deepEqual(
      (JSON.parse(seen['GET /api/v1/secrets']!) as { secrets: Array<{ name: string; set: boolean }> }).secrets
        .filter((s) => s.set)
        .map((s) => s.name)
        .sort(),
      ['smtp.password', 'webhook.token'],
      'the API says which secrets are set',
    );
    const csv = await panel.req('GET', '/audit.csv');
    assert.equal(csv.status, 200);
    assert.match(csv.text, /"secret\.set"/, 'the export has the secret changes (without values)');
    seen['GET /audit.csv'] = csv.text;
    const created = await panel.api('POST', '/api/v1/backups');
    assert.equal(created.status, 201, created.text);
    seen['POST /api/v1/backups'] = created.text;
    const name = (JSON.parse(created.text) as { backup: { name: string } }).backup.name;
    const verify = await panel.req('GET', `/api/v1/backups/${name}/verify`);
    assert.equal(verify.status, 200, verify.text);
    seen['GET /api/v1/backups/:name/verify'] = verify.text;
    for (const args of [
      ['secret', 'list', '--json'],
      ['audit', 'list', '--json', '--limit', '10000'],
      ['backup', 'list', '--json'],
      ['backup', 'verify', name, '--json'],
      ['settings', 'list', '--json'],
      ['user', 'list', '--json'],
    ]) {
      const r = await cliAsync(argos, args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      seen[`argos ${args.join(' ')}`] = r.stdout + r.stderr;
    }
    // The archive: its manifest, and the whole decompressed tar (the database inside holds ciphertext only).
    const archive = zlib.gunzipSync(fs.readFileSync(path.join(argos.env.ARGOS_DATA_DIR!, 'backups', name)));
    const manifest: Buffer[] = [];
    await readTar(
      (async function* () {
        yield archive;
      })(),
      (h) => ({ write: (c) => void (h.name === 'manifest.json' && manifest.push(Buffer.from(c))), end: () => undefined }),
    );
    seen['backup manifest.json'] = Buffer.concat(manifest).toString('utf8');
    seen['backup archive (decompressed)'] = archive.toString('latin1');
    seen['service logs (debug level)'] = argos.logs();
    assert.ok(seen['service logs (debug level)'].length > 0);

    for (const [where, text] of Object.entries(seen)) {
      for (const [what, value] of [
        ['smtp.password', SMTP_SECRET],
        ['webhook.token', HOOK_SECRET],
        ['TOTP seed', totpSeed],
      ] as const) {
        assert.ok(!text.includes(value), `${what} leaked in ${where}`);
      }
    }
  });

  test('a master-key rotation stops both services with a message; the old key is refused at startup, the new one works', async () => {
    const oldKey = argos.env.ARGOS_MASTER_KEY!;
    const newKey = 'c3'.repeat(32);
    const r = await cliAsync(argos, ['rotate-master-key'], { ARGOS_NEW_MASTER_KEY: newKey });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^ARGOS_MASTER_KEY=${newKey}$`, 'm'), 'prints the line for .env');
    await waitFor(
      'both services to stop',
      async () => (argos.logs().match(/master key rotated: restart with the new ARGOS_MASTER_KEY/g) ?? []).length >= 2,
      15_000,
    );
    await waitFor('both processes exited', async () => (argos.logs().match(/\[process exited 78\]/g) ?? []).length >= 2, 15_000);
    assert.ok(!argos.logs().includes(newKey) && !argos.logs().includes(oldKey), 'no key material in the service output');

    // Wrong (old) key at startup: a clear refusal, not a crash deep inside.
    const wrong = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', TSX, path.join(ROOT, 'services/panel/src/main.ts')], {
        env: { ...argos.env, ARGOS_MASTER_KEY: oldKey },
        cwd: argos.dataDir,
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('exit', (code) => resolve({ code, out }));
    });
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.out, /ARGOS_MASTER_KEY does not match this database/);
    assert.doesNotMatch(wrong.out, /\n\s+at /, 'no stack trace');

    argos.env.ARGOS_MASTER_KEY = newKey;
    await argos.start();
    assert.equal((await argos.viaCaddy(app(), '/')).status, 200);
    const secrets = await cliAsync(argos, ['secret', 'list', '--json']);
    assert.equal(secrets.code, 0, secrets.stderr);
    assert.ok((JSON.parse(secrets.stdout) as { secrets: Array<{ name: string; set: boolean }> }).secrets.find((s) => s.name === 'smtp.password')?.set);
    const audit = await cliAsync(argos, ['audit', 'list', '--action', 'system.master_key', '--json']);
    assert.equal((JSON.parse(audit.stdout) as { entries: unknown[] }).entries.length, 1, 'the rotation is audited');
  });
});
