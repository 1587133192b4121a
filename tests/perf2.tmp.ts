import { openStore } from '@argos/shared/store';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs'; import os from 'node:os'; import path from 'node:path';
import * as A from '@argos/shared/repos/access-log';
import { windowFor } from '../services/panel/src/traffic/overview.ts';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-'));
const s = await openStore({ dataDir: tmp, masterKey: randomBytes(32) }, 'migrator');
const N = Number(process.argv[2] ?? 300_000);
const now = Date.now();
await s.db.write(async (tx) => {
  await tx.run(`WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)
   INSERT INTO access_log (ts, host, method, path, status, duration_ms, bytes, ip, country)
   SELECT ? - abs(random()) % 604800000, 'h' || (i % 5) || '.example.test', 'GET', '/p/' || (i % 300), CASE i % 7 WHEN 3 THEN 302 WHEN 4 THEN 403 WHEN 5 THEN 404 WHEN 6 THEN 500 ELSE 200 END, i % 90, 1000 + i % 5000, '198.51.' || ((i / 256) % 256) || '.' || (i % 256), CASE i % 4 WHEN 0 THEN 'DE' WHEN 1 THEN 'FR' WHEN 2 THEN 'US' ELSE NULL END FROM c ORDER BY 1`, [N, now]);
  await tx.run(`INSERT INTO decision_log (ts, request_id, host, method, path, ip, country, user, verdict, reason, status, latency_us) SELECT ts, 'r' || id, host, method, path, ip, country, NULL, CASE status WHEN 403 THEN 'deny' WHEN 302 THEN 'login' ELSE 'allow' END, CASE status WHEN 403 THEN 'geo_not_allowed' ELSE 'session' END, status, 300 FROM access_log`);
});
for (const r of ['hour', 'day', 'week'] as const) {
  const w = windowFor(r, null, now);
  const out: string[] = [];
  await s.db.get('SELECT 1');
  for (const [name, fn] of Object.entries({ requestSeries: A.requestSeries, decisionSeries: A.decisionSeries, decisionReasons: A.decisionReasons, topCountries: A.topCountries, topDeniedIps: A.topDeniedIps, trafficByHost: A.trafficByHost, topPaths: A.topPaths, topClients: A.topClients })) {
    const t = performance.now(); await (fn as (q: unknown, w: unknown) => Promise<unknown>)(s.db, w); out.push(`${name}=${(performance.now() - t).toFixed(0)}`);
  }
  console.log(r, out.join(' '));
}
await s.db.close(); fs.rmSync(tmp, { recursive: true, force: true });
