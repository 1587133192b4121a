/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function (samples × time deltas), grouped by
 * function name and source location, as a text table. Paths are shown relative to the repository.
 */
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  fn: string;
  where: string;
  ms: number;
  pct: number;
}

/**
 * Self time (the function itself) and total time (the function and what it calls, each sample counted once per
 * function) per function; percentages are of the busy time (samples that are not `(idle)`).
 */
export function selfTimes(file: string, root: string): { busy: number; idle: number; rows: SelfTime[]; totals: SelfTime[] } {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (n: ProfileNode) => {
    const f = n.callFrame as ProfileNode['callFrame'] & { columnNumber?: number };
    const url = f.url.replace(/^file:\/\//, '').replace(/\?.*$/, '');
    // tsx emits whitespace-minified code: everything is on line 1, so the column tells functions apart.
    const pos = f.lineNumber === 0 && f.columnNumber !== undefined ? `1:${f.columnNumber + 1}` : String(f.lineNumber + 1);
    const where = url ? `${url.startsWith(root) ? path.relative(root, url) : url}:${pos}` : '';
    return { fn: f.functionName || '(anonymous)', where };
  };
  const self = new Map<string, SelfTime>();
  const incl = new Map<string, SelfTime>();
  let busy = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!);
    const dt = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / 1000;
    if (!n) continue;
    if (n.callFrame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    busy += dt;
    const k = keyOf(n);
    const row = self.get(`${k.fn} ${k.where}`) ?? { ...k, ms: 0, pct: 0 };
    row.ms += dt;
    self.set(`${k.fn} ${k.where}`, row);
    const seen = new Set<string>();
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const kk = keyOf(byId.get(id)!);
      const key = `${kk.fn} ${kk.where}`;
      if (seen.has(key) || kk.fn === '(root)') continue;
      seen.add(key);
      const r = incl.get(key) ?? { ...kk, ms: 0, pct: 0 };
      r.ms += dt;
      incl.set(key, r);
    }
  }
  const sort = (m: Map<string, SelfTime>) => [...m.values()].sort((a, b) => b.ms - a.ms).map((r) => ({ ...r, pct: busy ? (100 * r.ms) / busy : 0 }));
  return { busy, idle, rows: sort(self), totals: sort(incl) };
}

export function formatSelfTimes(file: string, root: string, top = 25): string {
  const { busy, idle, rows, totals } = selfTimes(file, root);
  const lines = [`${path.basename(file)}: ${(busy / 1000).toFixed(1)} s busy, ${(idle / 1000).toFixed(1)} s idle; % of busy time`, `top ${top} by self time:`];
  for (const r of rows.slice(0, top)) lines.push(`${r.pct.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms  ${r.fn}  ${r.where}`);
  lines.push(`top ${top} by total time (self + callees):`);
  for (const r of totals.slice(0, top)) lines.push(`${r.pct.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms  ${r.fn}  ${r.where}`);
  return lines.join('\n');
}

// `node --import tsx bench/lib/profile.ts FILE.cpuprofile [TOP]`: the same summary for any profile.
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
  process.stdout.write(formatSelfTimes(process.argv[2]!, root, Number(process.argv[3] ?? 30)) + '\n');
}
