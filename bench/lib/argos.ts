/**
 * The Argos side of the benchmark: a fresh data directory, the real `argos` CLI to configure it, the real gatekeeper
 * process (optionally under `--cpu-prof`), the baseline servers, and a store handle in this process for seeding
 * (sessions). Everything listens on 127.0.0.1 high ports.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT, TSX, freePort, rawRequest, waitFor } from '../../tests/lib/argos.ts';
import { openStore, type Store } from '@argos/shared/store';
import { createSession } from '@argos/shared/repos/sessions';
import { spawnTracked, rssMB, cpuSeconds, type Spawned } from './proc.ts';

export { ROOT, TSX, freePort, rawRequest, waitFor };

const ARGOS_BIN = path.join(ROOT, 'services/panel/bin/argos.mjs');
export const BENCH_DIR = path.join(ROOT, 'bench');

export interface Gatekeeper {
  pid: number;
  port: number;
  rssMB(): number | null;
  cpuSeconds(): number | null;
  /** Prometheus text of /metrics. */
  metrics(): Promise<string>;
  /** Sum of every series of a metric (all label sets), or null when absent. */
  metric(name: string): Promise<number | null>;
  health(): Promise<Record<string, unknown>>;
  /** Event-loop delay (ms) since the previous call (prom-client resets its histogram on every scrape). */
  loopLag(): Promise<{ p99: number; max: number }>;
  stop(): Promise<void>;
  output(): string;
}

export interface BenchArgos {
  dir: string;
  env: Record<string, string>;
  portalHost: string;
  gatekeeperPort: number;
  cli(args: string[], stdin?: string): string;
  startGatekeeper(opts?: { profileDir?: string }): Promise<Gatekeeper>;
  store(): Promise<Store>;
  /** Creates `n` portal sessions for a user directly in the database (as a login would); returns their cookie tokens. */
  sessions(userId: number, n: number): Promise<string[]>;
  close(): Promise<void>;
}

export async function createBenchArgos(extraEnv: Record<string, string> = {}): Promise<BenchArgos> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-bench-'));
  const gatekeeperPort = await freePort();
  const portalHost = 'auth.bench.test';
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? dir,
    ARGOS_MASTER_KEY: randomBytes(32).toString('hex'),
    ARGOS_DATA_DIR: path.join(dir, 'data'),
    ARGOS_PORTAL_URL: `http://${portalHost}:${await freePort()}`,
    ARGOS_GATEKEEPER_LISTEN: `127.0.0.1:${gatekeeperPort}`,
    ARGOS_PANEL_LISTEN: `127.0.0.1:${await freePort()}`,
    // Only the exact address the load generator and Caddy use is a trusted proxy: the login flood binds other
    // 127.0.0.0/8 addresses and is therefore a set of distinct clients.
    ARGOS_TRUSTED_PROXIES: '127.0.0.1/32',
    ARGOS_LOG_LEVEL: 'warn',
    ARGOS_ENV_FILE: path.join(dir, 'no.env'),
    // Experiments only: extra Node/V8 flags for the gatekeeper (e.g. --max-old-space-size=192).
    ...(process.env.BENCH_GATEKEEPER_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_GATEKEEPER_NODE_OPTIONS } : {}),
    ...extraEnv,
  };
  let store: Store | null = null;
  const gatekeepers: Gatekeeper[] = [];

  const a: BenchArgos = {
    dir,
    env,
    portalHost,
    gatekeeperPort,
    cli(args, stdin) {
      const r = spawnSync(process.execPath, [ARGOS_BIN, ...args], { env, cwd: dir, input: stdin ?? '', encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(`argos ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
      return r.stdout;
    },
    async startGatekeeper(opts = {}) {
      const node = ['--import', TSX];
      if (opts.profileDir) {
        fs.mkdirSync(opts.profileDir, { recursive: true });
        node.unshift('--cpu-prof', '--cpu-prof-dir', opts.profileDir);
        // Finer sampling (µs) to see short blocking stretches; Node's default is 1000.
        if (process.env.BENCH_PROFILE_INTERVAL_US) node.unshift('--cpu-prof-interval', process.env.BENCH_PROFILE_INTERVAL_US);
      }
      const p: Spawned = spawnTracked(process.execPath, [...node, path.join(ROOT, 'services/gatekeeper/src/main.ts')], { env, cwd: dir });
      const pid = p.child.pid!;
      await waitFor(
        'gatekeeper /healthz',
        async () => {
          if (p.child.exitCode !== null) throw new Error(`gatekeeper exited ${p.child.exitCode}: ${p.output().slice(-3000)}`);
          return (await rawRequest({ port: gatekeeperPort, path: '/healthz' })).status === 200;
        },
        60_000,
      );
      const metrics = async () => (await rawRequest({ port: gatekeeperPort, path: '/metrics' })).body;
      const g: Gatekeeper = {
        pid,
        port: gatekeeperPort,
        rssMB: () => rssMB(pid),
        cpuSeconds: () => cpuSeconds(pid),
        metrics,
        async metric(name) {
          // Sum over every series of that name (all label sets).
          const re = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'gm');
          let sum: number | null = null;
          for (const m of (await metrics()).matchAll(re)) sum = (sum ?? 0) + Number(m[1]);
          return sum;
        },
        async loopLag() {
          const text = await metrics();
          const get = (n: string) =>
            Number(new RegExp(`^argos_gatekeeper_nodejs_eventloop_lag_${n}_seconds ([0-9.eE+-]+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000;
          return { p99: get('p99'), max: get('max') };
        },
        async health() {
          return JSON.parse((await rawRequest({ port: gatekeeperPort, path: '/healthz' })).body) as Record<string, unknown>;
        },
        async stop() {
          await p.stop('SIGTERM', 20_000);
          gatekeepers.splice(gatekeepers.indexOf(g), 1);
        },
        output: p.output,
      };
      gatekeepers.push(g);
      return g;
    },
    async store() {
      store ??= await openStore({ dataDir: env.ARGOS_DATA_DIR!, masterKey: Buffer.from(env.ARGOS_MASTER_KEY!, 'hex') }, 'migrator');
      return store;
    },
    async sessions(userId, n) {
      const { db } = await a.store();
      const tokens: string[] = [];
      for (let i = 0; i < n; i += 500) {
        await db.write(async (tx) => {
          for (let j = i; j < Math.min(n, i + 500); j++) {
            const s = await createSession(tx, {
              kind: 'portal',
              userId,
              factors: 1,
              authMethod: 'password',
              remember: false,
              lifetimeS: 86_400,
              idleTimeoutS: 43_200,
              ip: '8.8.8.8',
              userAgent: 'argos-bench',
            });
            tokens.push(s.token);
          }
        });
      }
      return tokens;
    },
    async close() {
      for (const g of [...gatekeepers]) await g.stop();
      await store?.db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return a;
}

export interface TrivialServer {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** Starts a baseline server process (see trivial-server.ts). */
export async function startTrivial(mode: 'auth' | 'upstream', headers: Record<string, string> = {}): Promise<TrivialServer> {
  const port = await freePort();
  const p = spawnTracked(process.execPath, ['--import', TSX, path.join(BENCH_DIR, 'lib/trivial-server.ts'), mode, String(port)], {
    env: { ...process.env, BENCH_HEADERS: JSON.stringify(headers) },
  });
  await waitFor(`${mode} server`, async () => {
    if (p.child.exitCode !== null) throw new Error(`${mode} server exited: ${p.output()}`);
    return (await rawRequest({ port, path: '/' })).status === 200;
  });
  return { port, pid: p.child.pid!, stop: () => p.stop() };
}
