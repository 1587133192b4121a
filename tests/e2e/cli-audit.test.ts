/**
 * Every mutating `argos` CLI command writes an audit entry, black-box: the commands are enumerated from
 * `argos --help` (the registered COMMANDS), so a new command without an entry in COMMANDS below fails this test
 * ("command X has no audit test entry"). Each entry runs the real CLI; read-only commands are listed with the
 * reason, and the test proves they changed no table. Also `argos audit verify` on an intact and a tampered chain.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Database } from '@argos/shared/db/sqlite';
import type { AuditRow } from '@argos/shared/audit';
import { createArgos, freePort, type Argos, type CliResult } from '../lib/argos.ts';

interface Ctx {
  argos: Argos;
  db: Database;
  closed: number;
  one<T>(sql: string, params?: (string | number)[]): Promise<T>;
}

interface Entry {
  args: string[] | ((c: Ctx) => Promise<string[]>);
  stdin?: string;
  setup?: (c: Ctx) => Promise<void>;
  /** The audit action the command must record, or the reason it changes nothing. */
  expect?: RegExp;
  readOnly?: string;
  /** Exit status other than 0 that is part of the scenario (e.g. verify of a refused file). */
  code?: number;
}

const PW = 'cli-password-1\n';

/** Insertion order is the run order (rotate-master-key last: it changes the key every later command would need). */
const COMMANDS: Record<string, Entry> = {
  init: {
    args: (c) => Promise.resolve(['init', '--file', path.join(c.argos.dataDir, 'cov.env')]),
    readOnly: 'writes a new .env file only; never the database',
  },
  migrate: { args: ['migrate'], readOnly: 'schema migrations only (the database is already current here)' },
  'user add': { args: ['user', 'add', 'carol', '--password-stdin'], stdin: PW, expect: /^user\.create$/ },
  'admin create': { args: ['admin', 'create', 'root2', '--password-stdin'], stdin: PW, expect: /^user\.create$/ },
  'user list': { args: ['user', 'list'], readOnly: 'lists users' },
  'user edit': { args: ['user', 'edit', 'carol', '--email', 'carol@example.test'], expect: /^user\.update$/ },
  'user disable': { args: ['user', 'disable', 'carol'], expect: /^user\.disable$/ },
  'user enable': { args: ['user', 'enable', 'carol'], expect: /^user\.enable$/ },
  'user set-password': { args: ['user', 'set-password', 'carol', '--password-stdin'], stdin: 'cli-password-2\n', expect: /^user\.password\.set$/ },
  'admin reset-password': { args: ['admin', 'reset-password', 'root2'], expect: /^user\.password\.reset$/ },
  'user totp enroll': { args: ['user', 'totp', 'enroll', 'carol'], expect: /^user\.2fa\.enroll$/ },
  'user recovery-codes': { args: ['user', 'recovery-codes', 'carol'], expect: /^user\.2fa\.recovery_codes$/ },
  'user reset-2fa': { args: ['user', 'reset-2fa', 'carol'], expect: /^user\.2fa\.reset$/ },
  'admin disable-2fa': {
    setup: async (c) => void assert.equal(c.argos.cli(['user', 'totp', 'enroll', 'root2']).code, 0),
    args: ['admin', 'disable-2fa', 'root2'],
    expect: /^user\.2fa\.reset$/,
  },
  'ban list': { args: ['ban', 'list'], readOnly: 'lists bans' },
  'ban remove': {
    setup: async (c) => {
      const db = await Database.open(path.join(c.argos.dataDir, 'data', 'argos.db'));
      await db.write((tx) => tx.run("INSERT INTO bans (key, until, strikes, reason, created_at) VALUES ('client:198.51.100.66', ?, 1, 'test', ?)", [Date.now() + 600_000, Date.now()]));
      await db.close();
    },
    args: ['ban', 'remove', '198.51.100.66'],
    expect: /^regulation\.unban$/,
  },
  'token create': { args: ['token', 'create', 'carol', '--name', 'ci'], expect: /^token\.create$/ },
  'token list': { args: ['token', 'list', 'carol'], readOnly: 'lists tokens (never their values)' },
  'token revoke': {
    args: async (c) => ['token', 'revoke', String((await c.one<{ id: number }>("SELECT id FROM api_tokens WHERE name = 'ci'")).id)],
    expect: /^token\.revoke$/,
  },
  'host add': { args: ['host', 'add', 'cov.example.test', '--upstream', 'http://10.0.0.5', '--tls', 'off'], expect: /^host\.create$/ },
  'host edit': { args: ['host', 'edit', 'cov.example.test', '--policy', 'bypass'], expect: /^host\.update$/ },
  'host list': { args: ['host', 'list'], readOnly: 'lists hosts' },
  'host show': { args: ['host', 'show', 'cov.example.test'], readOnly: 'shows one host' },
  'host rule add': { args: ['host', 'rule', 'add', 'cov.example.test', '--policy', 'deny', '--path', '/admin/*'], expect: /^host\.rule\.create$/ },
  'host rule list': { args: ['host', 'rule', 'list', 'cov.example.test'], readOnly: 'lists rules' },
  'host rule remove': {
    args: async (c) => ['host', 'rule', 'remove', 'cov.example.test', String((await c.one<{ id: number }>('SELECT max(id) AS id FROM host_rules')).id)],
    expect: /^host\.rule\.delete$/,
  },
  'host remove': { args: ['host', 'remove', 'cov.example.test'], expect: /^host\.delete$/ },
  'caddy config': { args: ['caddy', 'config'], readOnly: 'prints the generated configuration' },
  'caddy apply': { args: ['caddy', 'apply'], expect: /^caddy\.apply(\.failed)?$/, code: 1 },
  'settings list': { args: ['settings', 'list'], readOnly: 'lists settings' },
  'settings get': { args: ['settings', 'get', 'portal.title'], readOnly: 'prints one setting' },
  'settings set': { args: ['settings', 'set', 'portal.title', 'Coverage'], expect: /^settings\.update$/ },
  'secret set': { args: ['secret', 'set', 'smtp.password', '--stdin'], stdin: 'smtp-cli-value', expect: /^secret\.set$/ },
  'secret list': { args: ['secret', 'list'], readOnly: 'shows set/unset only' },
  'secret clear': { args: ['secret', 'clear', 'smtp.password'], expect: /^secret\.delete$/ },
  check: { args: ['check', '--host', 'nowhere.example.test', '--uri', '/', '--ip', '203.0.113.7'], readOnly: 'explains a decision without side effects' },
  'geo update': {
    args: (c) => Promise.resolve(['geo', 'update', '--url', `http://127.0.0.1:${c.closed}/country.mmdb`]),
    expect: /^geo\.update(\.failed)?$/,
    code: 1,
  },
  'geo info': { args: ['geo', 'info'], readOnly: 'shows the country database in use' },
  'backup create': { args: ['backup', 'create'], expect: /^backup\.create$/ },
  'backup list': { args: ['backup', 'list'], readOnly: 'lists backup files' },
  'backup verify': {
    args: async (c) => ['backup', 'verify', (await c.one<{ name: string }>("SELECT name FROM backups WHERE kind = 'manual' ORDER BY id DESC LIMIT 1")).name],
    readOnly: 'checks a backup without extracting it',
  },
  'backup restore': {
    args: async (c) => [
      'backup',
      'restore',
      (await c.one<{ name: string }>("SELECT name FROM backups WHERE kind = 'manual' ORDER BY id DESC LIMIT 1")).name,
      '--yes',
    ],
    expect: /^backup\.restore$/,
  },
  'notify test': {
    args: ['notify', 'test', 'webhook'],
    readOnly: 'sends a test message; only its delivery is recorded, in the notification log (not configuration)',
    code: 1,
  },
  'notify history': { args: ['notify', 'history'], readOnly: 'lists deliveries' },
  'audit list': { args: ['audit', 'list', '--action', 'backup'], readOnly: 'lists audit entries' },
  'audit verify': { args: ['audit', 'verify'], readOnly: 'walks the hash chain' },
  'audit prune': {
    // Pruning removes the oldest entries past the retention (a year by default): age the first three of the chain.
    // (Their content no longer matches their hashes, but they are exactly what gets pruned: the chain verifies after.)
    setup: async (c) => {
      await c.db.write((tx) => tx.run('UPDATE audit_log SET ts = ts - ? WHERE id IN (SELECT id FROM audit_log ORDER BY id LIMIT 3)', [400 * 86_400_000]));
    },
    args: ['audit', 'prune'],
    expect: /^audit\.prune$/,
  },
  'rotate-master-key': { args: ['rotate-master-key', '--stdin'], stdin: 'ab'.repeat(32), expect: /^system\.master_key\.rotate$/ },
};

/** The command paths `argos --help` lists (the registered COMMANDS). */
function registered(r: CliResult): string[] {
  return r.stdout
    .split('\n')
    .filter((l) => /^ {2}\S/.test(l))
    .map((l) => l.trim().split(/\s{2,}/)[0]!);
}

/** Every table but the append-only logs: a read-only command changes none of it. */
async function digest(db: Database): Promise<string> {
  const logs = ['audit_log', 'decision_log', 'access_log', 'notification_log'];
  const tables = (await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")).filter(
    (t) => !logs.includes(t.name),
  );
  const parts: string[] = [];
  for (const { name } of tables) parts.push(name, JSON.stringify(await db.all(`SELECT * FROM "${name}"`)));
  return parts.join('\n');
}

describe('argos CLI: every mutating command is audited', () => {
  let argos: Argos;
  let c: Ctx;

  before(async () => {
    const closed = await freePort();
    argos = await createArgos({ ARGOS_CADDY_ADMIN: `http://127.0.0.1:${closed}` });
    assert.equal(argos.cli(['migrate']).code, 0);
    const db = await Database.open(path.join(argos.env.ARGOS_DATA_DIR!, 'argos.db'));
    c = {
      argos,
      db,
      closed,
      async one<T>(sql: string, params: (string | number)[] = []) {
        const row = await db.get<T>(sql, params);
        assert.ok(row, `no row for ${sql}`);
        return row;
      },
    };
  });

  after(async () => {
    await c?.db.close();
    await argos?.stop();
  });

  test('every registered command has an audit test entry', () => {
    const help = argos.cli(['--help']);
    assert.equal(help.code, 0);
    const paths = registered(help);
    assert.ok(paths.length > 30, `the enumeration found the commands (${paths.length})`);
    assert.deepEqual(
      paths.filter((p) => !Object.hasOwn(COMMANDS, p)).map((p) => `command ${p} has no audit test entry`),
      [],
    );
    assert.deepEqual(
      Object.keys(COMMANDS)
        .filter((k) => !paths.includes(k))
        .map((k) => `audit test entry ${k} matches no command`),
      [],
    );
  });

  test('each mutating command writes an audit entry; read-only ones change nothing', async (t) => {
    for (const [name, e] of Object.entries(COMMANDS)) {
      await t.test(name, async () => {
        await e.setup?.(c);
        const args = typeof e.args === 'function' ? await e.args(c) : e.args;
        const lastId = (await c.db.get<{ id: number | null }>('SELECT max(id) AS id FROM audit_log'))?.id ?? 0;
        const since = Date.now();
        const before = e.readOnly ? await digest(c.db) : '';
        const r = argos.cli(args, e.stdin);
        assert.equal(r.code, e.code ?? 0, `argos ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
        const added = await c.db.all<AuditRow>('SELECT * FROM audit_log WHERE id > ? OR ts >= ? ORDER BY id', [lastId, since]);
        if (e.readOnly) {
          assert.equal(await digest(c.db), before, `${name} is listed as read-only (${e.readOnly}) but changed data`);
        } else {
          assert.ok(
            e.expect && added.some((a) => e.expect!.test(a.action)),
            `${name} wrote no ${e.expect} entry; it wrote: ${added.map((a) => a.action).join(', ') || 'nothing'}`,
          );
        }
      });
    }
  });

  test('argos audit verify: ok on the intact chain, exit 1 and the first broken id after tampering', async () => {
    // The key was rotated by the last entry above: later commands need the new key.
    argos.env.ARGOS_MASTER_KEY = 'ab'.repeat(32);
    const ok = argos.cli(['audit', 'verify']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^OK: \d+ audit entries, chain intact/);
    const victim = await c.one<{ id: number }>("SELECT min(id) AS id FROM audit_log WHERE action = 'settings.update'");
    await c.db.write((tx) => tx.run("UPDATE audit_log SET target = 'tampered' WHERE id = ?", [victim.id]));
    const bad = argos.cli(['audit', 'verify', '--json']);
    assert.equal(bad.code, 1);
    assert.equal((JSON.parse(bad.stdout) as { brokenAt: number }).brokenAt, victim.id);
    const text = argos.cli(['audit', 'verify']);
    assert.match(text.stderr, new RegExp(`BROKEN: the audit chain breaks at entry #${victim.id}`));
  });
});
