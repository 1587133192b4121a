import { openStore } from '@argos/shared/store';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
import { insertAccessEntries, type AccessEntry } from '@argos/shared/repos/access-log';
import { Overview } from '../services/panel/src/traffic/overview.ts';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-'));
const s = await openStore({ dataDir: tmp, masterKey: randomBytes(32) }, 'migrator');
const N = Number(process.argv[2] ?? 1_000_000);
const now = Date.now();
let t = performance.now();
for (let b = 0; b < N; b += 10000) {
  const rows: AccessEntry[] = [];
  for (let i = b; i < b + 10000; i++) rows.push({ ts: now - Math.floor(Math.random() * 7 * 86400000), host: `h${i % 5}.example.test`, method: 'GET', path: `/p/${i % 300}`, status: [200, 200, 200, 302, 403, 404, 500][i % 7]!, durationMs: i % 90, bytes: 1000 + (i % 5000), ip: `198.51.${(i >> 8) % 256}.${i % 256}`, country: ['DE', 'FR', 'US', null][i % 4]! });
  await s.db.write((tx) => insertAccessEntries(tx, rows));
}
const ins = performance.now() - t;
t = performance.now();
await s.db.write(async (tx) => { await tx.run(`INSERT INTO decision_log (ts, request_id, host, method, path, ip, country, user, verdict, reason, status, latency_us) SELECT ts, 'r' || id, host, method, path, ip, country, NULL, CASE status WHEN 403 THEN 'deny' WHEN 302 THEN 'login' ELSE 'allow' END, CASE status WHEN 403 THEN 'geo_not_allowed' ELSE 'session' END, status, 300 FROM access_log`); });
console.log(`insert ${N} access rows: ${ins.toFixed(0)} ms (${(N / ins * 1000).toFixed(0)} rows/s); decisions copy ${(performance.now() - t).toFixed(0)} ms`);
const o = new Overview(s.db, null, 0);
for (const r of ['hour', 'day', 'week'] as const) {
  t = performance.now(); await o.charts(r, null, now); const c = performance.now() - t;
  t = performance.now(); await o.traffic(r, null, now); const tr = performance.now() - t;
  console.log(`${r}: dashboard charts ${c.toFixed(0)} ms, traffic page ${tr.toFixed(0)} ms`);
}
t = performance.now(); const use = await o.logTables(now); console.log(`log table use (dbstat) ${(performance.now() - t).toFixed(0)} ms`, use.map((u) => `${u.table}=${(u.bytes / 1048576).toFixed(0)}MiB`).join(' '), 'file', (fs.statSync(path.join(tmp, 'argos.db')).size / 1048576).toFixed(0), 'MiB');
await s.db.close(); fs.rmSync(tmp, { recursive: true, force: true });
