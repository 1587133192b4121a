/**
 * Load generation with wrk (Debian package `wrk`, 4.1; bench/lib/deps.ts installs it): fixed duration, fixed
 * connection count, a Lua script per run (static headers, or per-request variation), results read from a JSON line
 * printed by the script's done().
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnTracked } from './proc.ts';

export const WRK = '/usr/bin/wrk';

export function wrkPath(): string | null {
  if (fs.existsSync(WRK)) return WRK;
  const r = spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

export interface WrkResult {
  /** Completed requests per second. */
  rps: number;
  requests: number;
  durationS: number;
  /** Requests sent (including the ones still in flight at the end); only scripts with a request() function count them. */
  sent: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  /** Latency in milliseconds. */
  latency: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  raw: string;
}

export interface WrkRun {
  url: string;
  connections: number;
  threads: number;
  durationS: number;
  /** Lua script text (see the builders below). */
  script: string;
  args?: string[];
  timeoutS?: number;
}

const DONE = `
done = function(summary, latency, requests)
  local sent = 0
  for _, t in ipairs(__threads) do sent = sent + (t:get("counter") or 0) end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"sent":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}\\n',
    summary.requests, summary.duration, sent, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
`;

/** Lua string literal for an ASCII value. */
function lua(s: string): string {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new Error(`wrk script value is not printable ASCII: ${JSON.stringify(s)}`);
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function headerLines(headers: Record<string, string>): string {
  return Object.entries(headers)
    .map(([k, v]) => `wrk.headers[${lua(k)}] = ${lua(v)}`)
    .join('\n');
}

/** One request repeated: method, path and headers fixed. `thinkMs` adds a pause after each response (per connection). */
export function staticScript(o: { path: string; headers: Record<string, string>; method?: string; thinkMs?: number }): string {
  return `
wrk.method = ${lua(o.method ?? 'GET')}
wrk.path = ${lua(o.path)}
${headerLines(o.headers)}
__threads = {}
setup = function(thread) table.insert(__threads, thread) end
${o.thinkMs ? `delay = function() return ${Math.round(o.thinkMs)} end` : ''}
${DONE}`;
}

/**
 * A distinct client address in X-Forwarded-For on every request: request n (n = offset + counter × threads + thread)
 * gets an IPv4 address when n is even and an IPv6 address in its own /64 when n is odd. Both maps are bijections
 * (multiplication by an odd constant modulo a number it is coprime with), so no two requests share an address or a /64.
 * Script args: offset, thread count.
 */
export function distinctClientsScript(o: { path: string; headers: Record<string, string> }): string {
  return `
wrk.method = "GET"
wrk.path = ${lua(o.path)}
${headerLines(o.headers)}
__threads = {}
local nthreads = 1
local offset = 0
counter = 0
setup = function(thread)
  thread:set("tid", #__threads)
  table.insert(__threads, thread)
end
init = function(args)
  offset = tonumber(args[1]) or 0
  nthreads = tonumber(args[2]) or 1
  base = {}
  for k, v in pairs(wrk.headers) do base[k] = v end
end
local function v4(k)
  local v = 16777216 + (k * 2654435761) % 3741319168
  local a = math.floor(v / 16777216)
  local b = math.floor(v / 65536) % 256
  local c = math.floor(v / 256) % 256
  return string.format("%d.%d.%d.%d", a, b, c, v % 256)
end
local function v6(k)
  local h = (k * 2654435761) % 4294967296
  return string.format("2a0%x:%x:%x:%x::1", k % 16, math.floor(h / 65536), h % 65536, math.floor(k / 16) % 65536)
end
request = function()
  local n = offset + counter * nthreads + tid
  counter = counter + 1
  local k = math.floor(n / 2)
  if n % 2 == 0 then base["X-Forwarded-For"] = v4(k) else base["X-Forwarded-For"] = v6(k) end
  return wrk.format(nil, nil, base)
end
${DONE}`;
}

let scriptDir: string | null = null;

/** Removes the temporary directory of the Lua scripts (end of the run). */
export function cleanupWrk(): void {
  if (scriptDir) fs.rmSync(scriptDir, { recursive: true, force: true });
  scriptDir = null;
}

/** Runs wrk once and parses its result line. Throws with wrk's output when it fails. */
export async function runWrk(r: WrkRun): Promise<WrkResult> {
  scriptDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'argos-bench-wrk-'));
  const file = path.join(scriptDir, `s${Date.now()}-${Math.random().toString(36).slice(2)}.lua`);
  fs.writeFileSync(file, r.script);
  const args = ['-t', String(r.threads), '-c', String(r.connections), '-d', `${r.durationS}s`, '--timeout', `${r.timeoutS ?? 10}s`, '-s', file, r.url];
  if (r.args?.length) args.push('--', ...r.args);
  const bin = wrkPath();
  if (!bin) throw new Error('wrk is not installed (apt-get install -y wrk)');
  const p = spawnTracked(bin, args);
  const code = await new Promise<number | null>((resolve) => p.child.once('exit', (c) => resolve(c)));
  fs.rmSync(file, { force: true });
  const out = p.output();
  const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}): ${args.join(' ')}\n${out.slice(-2000)}`);
  const j = JSON.parse(line.slice(8)) as Record<string, number>;
  const durationS = j.duration_us! / 1e6;
  const ms = (us: number | undefined) => (us ?? 0) / 1000;
  return {
    rps: j.requests! / durationS,
    requests: j.requests!,
    durationS,
    sent: j.sent!,
    errors: { connect: j.connect!, read: j.read!, write: j.write!, status: j.status!, timeout: j.timeout! },
    latency: { p50: ms(j.p50), p90: ms(j.p90), p99: ms(j.p99), p999: ms(j.p999), max: ms(j.max), mean: ms(j.mean) },
    raw: out,
  };
}

/** Throws when a run had socket errors or timeouts (non-2xx statuses are checked by the scenario, which knows what to expect). */
export function assertClean(what: string, r: WrkResult): void {
  const e = r.errors;
  if (e.connect || e.read || e.write || e.timeout) throw new Error(`${what}: wrk saw socket errors ${JSON.stringify(e)}\n${r.raw.slice(-1500)}`);
}
