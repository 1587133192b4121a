/**
 * The access log (Caddy's JSON access log, ingested by the panel in batches) and the traffic statistics the
 * dashboard and the traffic page show, joined with the decision log written by the gatekeeper.
 * Paths are stored without query strings.
 */
import type { Queryable, Tx } from '../db/sqlite.ts';

export interface AccessEntry {
  ts: number;
  host: string;
  method: string;
  /** Without the query string. */
  path: string;
  status: number;
  durationMs: number;
  bytes: number;
  ip: string;
  country: string | null;
}

/**
 * Inserts entries in one statement per 1,000 rows (inside one writer-queue transaction). The rows travel as one
 * JSON parameter expanded by json_each, so the statement stays constant and fully parameterised.
 */
export async function insertAccessEntries(tx: Tx, entries: readonly AccessEntry[]): Promise<number> {
  for (let i = 0; i < entries.length; i += 1000) {
    const rows = entries.slice(i, i + 1000).map((e) => [e.ts, e.host, e.method, e.path, e.status, e.durationMs, e.bytes, e.ip, e.country]);
    await tx.run(
      `INSERT INTO access_log (ts, host, method, path, status, duration_ms, bytes, ip, country)
       SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8 FROM json_each(?)`,
      [JSON.stringify(rows)],
    );
  }
  return entries.length;
}

/** Deletes access-log entries older than `retentionS`; returns how many. */
export async function pruneAccessLog(tx: Tx, retentionS: number, now = Date.now()): Promise<number> {
  return (await tx.run('DELETE FROM access_log WHERE ts < ?', [now - retentionS * 1000])).changes;
}

/** Notification history is kept this long (it is small: one row per message). */
export const NOTIFICATION_HISTORY_S = 90 * 86_400;

/** Housekeeping for the observability tables: access log past `traffic.retention`, notification history past 90 days. */
export async function pruneObservability(tx: Tx, settings: { 'traffic.retention': number }, now = Date.now()): Promise<number> {
  const access = await pruneAccessLog(tx, settings['traffic.retention'], now);
  const history = (await tx.run('DELETE FROM notification_log WHERE ts < ?', [now - NOTIFICATION_HISTORY_S * 1000])).changes;
  return access + history;
}

// ---- statistics --------------------------------------------------------------------------------------------

export interface Window {
  since: number;
  until: number;
  /** Bucket width in ms for time series. */
  bucketMs: number;
  /** Only this host (normalised), or null for all. */
  host: string | null;
}

export interface SeriesPoint {
  bucket: number;
  key: string;
  n: number;
}

/** Requests per time bucket by status class (2xx, 3xx, 4xx, 5xx, other) from the access log. */
export function requestSeries(q: Queryable, w: Window): Promise<SeriesPoint[]> {
  return q.all<SeriesPoint>(
    `SELECT CAST((ts - ?1) / ?3 AS INTEGER) AS bucket,
            CASE WHEN status BETWEEN 200 AND 299 THEN '2xx' WHEN status BETWEEN 300 AND 399 THEN '3xx'
                 WHEN status BETWEEN 400 AND 499 THEN '4xx' WHEN status BETWEEN 500 AND 599 THEN '5xx' ELSE 'other' END AS key,
            count(*) AS n
     FROM access_log WHERE ts >= ?1 AND ts < ?2 AND (?4 IS NULL OR host = ?4) GROUP BY bucket, key`,
    [w.since, w.until, w.bucketMs, w.host],
  );
}

/** Gatekeeper decisions per time bucket by verdict (allow, login, deny, rate_limited, …). */
export function decisionSeries(q: Queryable, w: Window): Promise<SeriesPoint[]> {
  return q.all<SeriesPoint>(
    `SELECT CAST((ts - ?1) / ?3 AS INTEGER) AS bucket, verdict AS key, count(*) AS n
     FROM decision_log WHERE ts >= ?1 AND ts < ?2 AND (?4 IS NULL OR host = ?4) GROUP BY bucket, key`,
    [w.since, w.until, w.bucketMs, w.host],
  );
}

export interface Counted {
  key: string;
  n: number;
}

/** Decisions by reason (all verdicts but allow), most frequent first. */
export function decisionReasons(q: Queryable, w: Window, limit = 10): Promise<Array<Counted & { verdict: string }>> {
  return q.all(
    `SELECT reason AS key, verdict, count(*) AS n FROM decision_log
     WHERE ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR host = ?3) AND verdict <> 'allow'
     GROUP BY reason, verdict ORDER BY n DESC LIMIT ?4`,
    [w.since, w.until, w.host, limit],
  );
}

/** Client countries by requests (access log; the decision log when the access log has no country). */
export function topCountries(q: Queryable, w: Window, limit = 10): Promise<Counted[]> {
  return q.all<Counted>(
    `SELECT coalesce(country, '??') AS key, count(*) AS n FROM decision_log
     WHERE ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR host = ?3) GROUP BY key ORDER BY n DESC LIMIT ?4`,
    [w.since, w.until, w.host, limit],
  );
}

/** Client addresses with the most denied (deny, rate_limited, bad_request) decisions, with the latest reason. */
export function topDeniedIps(q: Queryable, w: Window, limit = 10): Promise<Array<Counted & { country: string | null; reason: string }>> {
  // SQLite's bare columns next to max(): country and reason come from each address's latest denied decision.
  return q.all(
    `SELECT ip AS key, country, reason, count(*) AS n, max(id) AS latest FROM decision_log
     WHERE ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR host = ?3) AND verdict IN ('deny', 'rate_limited', 'bad_request')
     GROUP BY ip ORDER BY n DESC LIMIT ?4`,
    [w.since, w.until, w.host, limit],
  );
}

export interface HostTraffic {
  host: string;
  n: number;
  s2: number;
  s3: number;
  s4: number;
  s5: number;
  avg_ms: number;
  max_ms: number;
  bytes: number;
}

/** Requests per host with status classes, latency and bytes. */
export function trafficByHost(q: Queryable, w: Window, limit = 50): Promise<HostTraffic[]> {
  return q.all<HostTraffic>(
    `SELECT host, count(*) AS n,
            sum(status BETWEEN 200 AND 299) AS s2, sum(status BETWEEN 300 AND 399) AS s3,
            sum(status BETWEEN 400 AND 499) AS s4, sum(status >= 500) AS s5,
            avg(duration_ms) AS avg_ms, max(duration_ms) AS max_ms, sum(bytes) AS bytes
     FROM access_log WHERE ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR host = ?3)
     GROUP BY host ORDER BY n DESC LIMIT ?4`,
    [w.since, w.until, w.host, limit],
  );
}

/** The most requested paths. */
export function topPaths(q: Queryable, w: Window, limit = 15): Promise<Array<Counted & { host: string; errors: number }>> {
  return q.all(
    `SELECT host, path AS key, count(*) AS n, sum(status >= 400) AS errors FROM access_log
     WHERE ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR host = ?3) GROUP BY host, path ORDER BY n DESC LIMIT ?4`,
    [w.since, w.until, w.host, limit],
  );
}

/** The busiest client addresses, with how many of their requests the gatekeeper denied. */
export function topClients(q: Queryable, w: Window, limit = 15): Promise<Array<Counted & { country: string | null; bytes: number; denied: number }>> {
  return q.all(
    `WITH top AS (
       SELECT ip, max(country) AS country, count(*) AS n, sum(bytes) AS bytes FROM access_log
       WHERE ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR host = ?3) GROUP BY ip ORDER BY n DESC LIMIT ?4),
     denied AS (
       SELECT ip, count(*) AS n FROM decision_log
       WHERE ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR host = ?3) AND verdict IN ('deny', 'rate_limited', 'bad_request') AND ip IN (SELECT ip FROM top)
       GROUP BY ip)
     SELECT top.ip AS key, top.country, top.n, top.bytes, coalesce(denied.n, 0) AS denied FROM top LEFT JOIN denied ON denied.ip = top.ip ORDER BY top.n DESC`,
    [w.since, w.until, w.host, limit],
  );
}

/** Published hosts (for the host filter). */
export async function filterHosts(q: Queryable): Promise<string[]> {
  return (await q.all<{ domain: string }>('SELECT domain FROM hosts ORDER BY domain LIMIT 500')).map((r) => r.domain);
}

export interface TableUse {
  table: string;
  rows: number;
  bytes: number;
  estimated: boolean;
}

export const LOG_TABLES = ['access_log', 'decision_log', 'audit_log', 'notification_log'] as const;

/**
 * Disk use of the log tables (with their indexes): from SQLite's dbstat table when it is compiled in, else an
 * estimate from the file size shared out by row counts and average row sizes.
 */
export async function logTableUse(q: Queryable): Promise<TableUse[]> {
  const c = await q.get<Record<(typeof LOG_TABLES)[number], number>>(
    `SELECT (SELECT count(*) FROM access_log) AS access_log, (SELECT count(*) FROM decision_log) AS decision_log,
            (SELECT count(*) FROM audit_log) AS audit_log, (SELECT count(*) FROM notification_log) AS notification_log`,
  );
  const rows = (t: (typeof LOG_TABLES)[number]) => c?.[t] ?? 0;
  try {
    const use = await q.all<{ tbl: string; bytes: number }>(
      `SELECT coalesce(m.tbl_name, s.name) AS tbl, sum(s.pgsize) AS bytes FROM dbstat s LEFT JOIN sqlite_schema m ON m.name = s.name
       WHERE coalesce(m.tbl_name, s.name) IN (SELECT value FROM json_each(?)) GROUP BY tbl`,
      [JSON.stringify(LOG_TABLES)],
    );
    const by = new Map(use.map((r) => [r.tbl, r.bytes]));
    return LOG_TABLES.map((t) => ({ table: t, rows: rows(t), bytes: by.get(t) ?? 0, estimated: false }));
  } catch {
    const page = (await q.get<{ s: number }>('SELECT page_size AS s FROM pragma_page_size'))?.s ?? 4096;
    const pages = (await q.get<{ n: number }>('SELECT page_count AS n FROM pragma_page_count'))?.n ?? 0;
    const total = LOG_TABLES.reduce((a, t) => a + rows(t), 0) || 1;
    return LOG_TABLES.map((t) => ({ table: t, rows: rows(t), bytes: Math.round((pages * page * rows(t)) / total), estimated: true }));
  }
}
