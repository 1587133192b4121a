/** The audit trail: chain verification, tamper detection, retention with a pruning anchor, CSV export. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore } from './store.ts';
import {
  appendAudit,
  auditCsvLine,
  checkAuditChain,
  csvCell,
  iterateAudit,
  listAudit,
  pruneAudit,
  recordEvent,
  verifyAuditChain,
  CLI_ACTOR,
  type AuditRow,
} from './audit.ts';

const KEY = Buffer.alloc(32, 3);
const open = () => openStore({ dataDir: path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'argos-audit-')), 'data'), masterKey: KEY }, 'migrator');
const DAY = 86_400_000;

test('the chain verifies; a changed, removed or reordered entry is reported at the first broken link', async () => {
  const { db } = await open();
  for (let i = 0; i < 6; i++) await recordEvent(db, CLI_ACTOR, { action: 'test.event', target: `t${i}` });
  assert.deepEqual(await verifyAuditChain(db), { ok: true, checked: 6, brokenAt: null });

  await db.write((tx) => tx.run('UPDATE audit_log SET details = \'{"x":1}\' WHERE id = 4'));
  const changed = await checkAuditChain(db);
  assert.equal(changed.brokenAt, 4);
  assert.match(changed.reason!, /changed after it was written/);
  await db.write((tx) => tx.run("UPDATE audit_log SET details = '{}' WHERE id = 4"));
  assert.equal((await checkAuditChain(db)).ok, true, 'restoring the content repairs it');

  await db.write((tx) => tx.run('DELETE FROM audit_log WHERE id = 3'));
  const removed = await checkAuditChain(db);
  assert.equal(removed.brokenAt, 4);
  assert.match(removed.reason!, /does not link to the previous one/);
  await db.close();
});

test('retention prunes old entries behind an anchor: the chain still verifies; removing more, or editing the anchor, is detected', async () => {
  const { db } = await open();
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  for (let d = 0; d < 10; d++) await db.write((tx) => appendAudit(tx, CLI_ACTOR, { action: 'test.day', target: `d${d}` }, t0 + d * DAY));
  const lastOld = (await db.get<{ hash: string }>('SELECT hash FROM audit_log WHERE id = 4'))!.hash;
  const n = await pruneAudit(db, t0 + 4 * DAY, CLI_ACTOR, t0 + 10 * DAY);
  assert.equal(n, 4, 'days 0-3 are removed');
  const rows = await db.all<AuditRow>('SELECT * FROM audit_log ORDER BY id');
  assert.equal(rows[0]!.target, 'd4');
  const anchor = rows.at(-1)!;
  assert.equal(anchor.action, 'audit.prune');
  assert.deepEqual(JSON.parse(anchor.details), { anchor: lastOld, pruned: 4, through_id: 4, cutoff_ts: t0 + 4 * DAY });
  const rep = await checkAuditChain(db);
  assert.equal(rep.ok, true);
  assert.equal(rep.anchoredAt, anchor.id);

  // A second pruning later moves the anchor (the first anchor itself may go).
  assert.equal(await pruneAudit(db, t0 + 20 * DAY, CLI_ACTOR, t0 + 30 * DAY), 7);
  assert.equal((await checkAuditChain(db)).ok, true);
  assert.equal(await pruneAudit(db, t0, CLI_ACTOR), 0, 'nothing older than the cutoff: nothing happens');

  // Quietly deleting the oldest remaining entry is not covered by the anchor.
  for (let i = 0; i < 3; i++) await recordEvent(db, CLI_ACTOR, { action: 'test.more' });
  const first = (await db.get<{ id: number }>('SELECT min(id) AS id FROM audit_log'))!.id;
  await db.write((tx) => tx.run('DELETE FROM audit_log WHERE id = ?', [first]));
  const cut = await checkAuditChain(db);
  assert.equal(cut.ok, false);
  assert.match(cut.reason!, /pruning anchor/);
  await db.close();

  // Editing the anchor's recorded hash breaks the anchor entry's own hash.
  const s2 = await open();
  for (let d = 0; d < 3; d++) await s2.db.write((tx) => appendAudit(tx, CLI_ACTOR, { action: 'test.day' }, t0 + d * DAY));
  await pruneAudit(s2.db, t0 + 2 * DAY, CLI_ACTOR, t0 + 3 * DAY);
  await s2.db.write((tx) => tx.run("UPDATE audit_log SET details = replace(details, '\"pruned\":2', '\"pruned\":1') WHERE action = 'audit.prune'"));
  const edited = await checkAuditChain(s2.db);
  assert.equal(edited.ok, false);
  await s2.db.close();
});

test('CSV cells are always quoted, quotes doubled, and formula-looking cells neutralised', () => {
  assert.equal(csvCell('plain'), '"plain"');
  assert.equal(csvCell('say "hi", ok'), '"say ""hi"", ok"');
  assert.equal(csvCell('line\nbreak'), '"line\nbreak"');
  for (const f of ['=1+1', '+SUM(A1)', '-2+3', '@cmd', '\t=x', '\r=x']) assert.equal(csvCell(f), `"'${f}"`, f);
  assert.equal(csvCell(null), '""');
  assert.equal(csvCell(42), '"42"');
  const line = auditCsvLine({
    id: 1,
    ts: 0,
    actor: 'admin:=evil',
    action: 'x',
    target: '=HYPERLINK("http://x")',
    ip: null,
    user_agent: null,
    details: '{}',
    prev_hash: '0',
    hash: 'h',
  });
  assert.equal(line, '"1","1970-01-01T00:00:00.000Z","admin:=evil","x","\'=HYPERLINK(""http://x"")","","","{}","h"\r\n');
});

test('filters: actor, action prefix (underscores are literal), target, time; exports page through every match', async () => {
  const { db } = await open();
  await recordEvent(db, { name: 'admin:alice' }, { action: 'system.master_key.rotate', target: 'master_key' });
  await recordEvent(db, { name: 'cli' }, { action: 'system.masterXkey.rotate', target: 'x' });
  await recordEvent(db, { name: 'cli' }, { action: 'host.create', target: 'a.example.test' });
  assert.deepEqual(
    (await listAudit(db, { action: 'system.master_key' })).map((r) => r.action),
    ['system.master_key.rotate'],
  );
  assert.deepEqual(
    (await listAudit(db, { action: 'host' })).map((r) => r.target),
    ['a.example.test'],
  );
  assert.deepEqual((await listAudit(db, { actor: 'admin:alice' })).length, 1);
  assert.deepEqual((await listAudit(db, { since: Date.now() + 60_000 })).length, 0);
  for (let i = 0; i < 25; i++) await recordEvent(db, CLI_ACTOR, { action: 'bulk.item', target: String(i) });
  const all: number[] = [];
  for await (const r of iterateAudit(db, { action: 'bulk' }, 7)) all.push(Number(r.target));
  assert.deepEqual(
    all,
    Array.from({ length: 25 }, (_, i) => 24 - i),
  );
  await db.close();
});
