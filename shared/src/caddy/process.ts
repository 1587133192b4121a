/**
 * Runs a Caddy child process for `npm start` and the tests: config file written 0600, Caddy's state kept under
 * `<dataDir>/caddy/`, ready once the admin API answers, stopped with SIGTERM then SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CaddyAdminClient, parseAdminAddress } from './admin.ts';

/** The subset of a pino logger Caddy's output is forwarded to. */
export interface CaddyLogSink {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface StartCaddyOptions {
  /** Config to write (mode 0600) to `configPath`, or to `<dataDir>/caddy/caddy.json` by default. */
  config?: object;
  /** Existing config file to run when `config` is not given. */
  configPath?: string;
  /** The admin address the config listens on ("unix//path" or "127.0.0.1:2019"): polled until Caddy is ready. */
  adminListen: string;
  /** Argos data directory; Caddy's XDG config/data go to `<dataDir>/caddy/{config,data}`. */
  dataDir: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  log?: CaddyLogSink;
  /** Caddy binary; default: the one on PATH. */
  caddyBin?: string;
  readyTimeoutMs?: number;
}

export interface CaddyProcess {
  child: ChildProcess;
  admin: CaddyAdminClient;
  configPath: string;
  stop(): Promise<void>;
}

/** The `caddy` executable on PATH, or null. */
export function findCaddy(envPath = process.env.PATH ?? ''): string | null {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, 'caddy');
    try {
      if (fs.statSync(p).isFile()) {
        fs.accessSync(p, fs.constants.X_OK);
        return p;
      }
    } catch {
      // not here
    }
  }
  return null;
}

function writeConfigFile(file: string, config: object): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Caddy 2.6 cannot listen on a socket file left by a crashed run: remove it, unless something still answers there. */
async function prepareSocket(socketPath: string): Promise<void> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  if (await canConnect(socketPath)) throw new Error(`another process already serves the Caddy admin socket ${socketPath}`);
  fs.unlinkSync(socketPath);
}

const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

function forwardLines(stream: NodeJS.ReadableStream, log: CaddyLogSink | undefined, tail: string[]): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      tail.push(line);
      if (tail.length > 20) tail.shift();
      if (!log) continue;
      try {
        const { level, msg, ts: _ts, ...rest } = JSON.parse(line) as { level?: string; msg?: string; ts?: unknown };
        const lv = level && LEVELS.has(level) ? (level as 'debug' | 'info' | 'warn' | 'error') : level === 'fatal' || level === 'panic' ? 'error' : 'info';
        log[lv]({ caddy: rest }, `caddy: ${msg ?? ''}`);
      } catch {
        log.info({}, `caddy: ${line}`);
      }
    }
  });
}

/** Starts `caddy run --config <file>` and resolves once its admin API answers (10 s by default). */
export async function startCaddy(opts: StartCaddyOptions): Promise<CaddyProcess> {
  const bin = opts.caddyBin ?? findCaddy();
  if (!bin) throw new Error('caddy is not installed (not found on PATH); install it, e.g. apt-get install -y caddy');
  const caddyDir = path.join(opts.dataDir, 'caddy');
  fs.mkdirSync(caddyDir, { recursive: true, mode: 0o700 });
  const xdgConfig = path.join(caddyDir, 'config');
  const xdgData = path.join(caddyDir, 'data');
  fs.mkdirSync(xdgConfig, { recursive: true, mode: 0o700 });
  fs.mkdirSync(xdgData, { recursive: true, mode: 0o700 });

  let configPath: string;
  if (opts.config) {
    configPath = opts.configPath ?? path.join(caddyDir, 'caddy.json');
    writeConfigFile(configPath, opts.config);
  } else if (opts.configPath) {
    configPath = opts.configPath;
  } else {
    throw new Error('startCaddy: give config or configPath');
  }

  const target = parseAdminAddress(opts.adminListen);
  if (target.socketPath) await prepareSocket(target.socketPath);

  const child = spawn(bin, ['run', '--config', configPath], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env, XDG_CONFIG_HOME: xdgConfig, XDG_DATA_HOME: xdgData },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  forwardLines(child.stdout!, opts.log, tail);
  forwardLines(child.stderr!, opts.log, tail);

  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  let spawnError: Error | null = null;
  child.once('error', (e) => {
    spawnError = e;
  });

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null || spawnError) return;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          resolve();
        }, 5_000);
      });
      await Promise.race([exited, killed]);
      clearTimeout(timer);
      await exited;
    })();
    return stopping;
  };

  const admin = new CaddyAdminClient(opts.adminListen, 1_000);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 10_000);
  let done = false;
  void exited.then(() => (done = true));
  while (!done && !spawnError) {
    if (await admin.reachable()) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Caddy did not answer on ${opts.adminListen} within ${opts.readyTimeoutMs ?? 10_000} ms:\n${tail.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (done || spawnError) {
    const err = spawnError as Error | null;
    throw new Error(`Caddy exited during startup (code ${child.exitCode}${err ? `, ${err.message}` : ''}):\n${tail.join('\n')}`);
  }
  // The socket lives in a 0700 directory already; 0600 on the socket itself is belt and braces.
  if (target.socketPath) {
    try {
      fs.chmodSync(target.socketPath, 0o600);
    } catch {
      // Caddy may have replaced it meanwhile; the directory mode still protects it
    }
  }
  return { child, admin: new CaddyAdminClient(opts.adminListen), configPath, stop };
}
