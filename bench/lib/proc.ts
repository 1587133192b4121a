/**
 * Child processes of the benchmark: every one is tracked so a crash or Ctrl-C stops them all (by pid, never by name),
 * plus small /proc readers (resident memory, CPU time) used to report what the machine was doing.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';

const children = new Set<ChildProcess>();

export interface Spawned {
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

/** Spawns a tracked child; its output is kept (last 200 kB) for error messages. */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): Spawned {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => (children.delete(child), resolve())));
  return {
    child,
    output: () => out,
    async stop(signal = 'SIGTERM', graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.kill(signal);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Kills every tracked child that is still running (SIGKILL, by pid). */
export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

process.once('exit', killAll);

/** VmRSS of a process in MB, or null when it is gone. */
export function rssMB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

const TICK = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used, or null. */
export function cpuSeconds(pid: number | 'self', withChildren = false): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after the name: state(0) … utime(11) stime(12) cutime(13) cstime(14)
    const own = Number(f[11]) + Number(f[12]);
    const kids = withChildren ? Number(f[13]) + Number(f[14]) : 0;
    return (own + kids) / TICK;
  } catch {
    return null;
  }
}

/** CPU seconds of a process's main thread (task id = pid) and of all its other threads together. */
export function threadCpuSeconds(pid: number): { main: number; others: number } | null {
  const total = cpuSeconds(pid);
  if (total === null) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const main = (Number(f[11]) + Number(f[12])) / TICK;
    return { main, others: Math.max(0, total - main) };
  } catch {
    return null;
  }
}

/** Machine-wide busy and total CPU seconds since boot (all cores), from /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / TICK, total: total / TICK };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
