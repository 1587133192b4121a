/**
 * A real CrowdSec Local API (Debian crowdsec 1.4) for tests: its own config, database and credentials in a temp
 * directory, listening on a random loopback port, no Central API, no hub update, no agent (`-no-cs`).
 * The config dir, hub and profiles stay the packaged ones in /etc/crowdsec (read-only use).
 * Recipe: shared/docs/real-components.md §3.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort, waitFor, ROOT as REPO } from './argos.ts';

export interface LapiDecisionRow {
  id: number;
  scope: string;
  value: string;
  type: string;
  origin: string;
  scenario: string;
  duration: string;
}

export interface Lapi {
  url: string;
  port: number;
  dir: string;
  /** A bouncer key registered for tests (`cscli bouncers add argos-test -k KEY`). */
  bouncerKey: string;
  /** Machine credentials for Argos's pushes (`cscli machines add argos-test-machine --password …`). */
  machineId: string;
  machinePassword: string;
  /** Runs cscli against this LAPI; throws with its output on a non-zero exit. */
  cscli(args: string[]): string;
  /** Active decisions as `cscli decisions list -o json` shows them (all origins). */
  decisions(): LapiDecisionRow[];
  /**
   * Replays a log file through a real CrowdSec agent (one-shot `-dsn file://… -type …`, no API server of its own)
   * with Argos's parser and scenarios from crowdsec/ (plus the packaged syslog, date, caddy and http parsers and the
   * http-probing scenario); alerts go to this LAPI.
   * Returns the agent's output.
   */
  agentReplay(logFile: string, type: string): string;
  stop(): Promise<void>;
  start(): Promise<void>;
  logs(): string;
  close(): Promise<void>;
}

/** Fails (never skips) when CrowdSec is not installed: npm test's pretest installs it when run as root. */
export function requireCrowdsec(): void {
  const missing = ['crowdsec', 'cscli'].filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
  if (missing.length || !fs.existsSync('/etc/crowdsec/profiles.yaml')) {
    throw new Error(
      `CrowdSec is not installed (missing: ${missing.join(', ') || '/etc/crowdsec/profiles.yaml'}). ` +
        'Run `npm test` as root once: its pretest installs crowdsec offline (see scripts/ensure-test-deps.mjs), or run ' +
        "`sudo sh -c \"mkdir -p /etc/crowdsec && echo '# offline' > /etc/crowdsec/online_api_credentials.yaml && apt-get install -y crowdsec\"`.",
    );
  }
}

function configYaml(dir: string, port: number): string {
  return `common:
  daemonize: false
  log_media: stdout
  log_level: info
  working_dir: .
config_paths:
  config_dir: /etc/crowdsec/
  data_dir: ${dir}/data/
  simulation_path: /etc/crowdsec/simulation.yaml
  hub_dir: /var/lib/crowdsec/hub/
  index_path: /var/lib/crowdsec/hub/.index.json
  notification_dir: /etc/crowdsec/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: /etc/crowdsec/acquis.yaml
  parser_routines: 1
cscli:
  output: human
db_config:
  log_level: info
  type: sqlite
  db_path: ${dir}/data/crowdsec.db
  use_wal: true
  flush:
    max_items: 5000
    max_age: 7d
api:
  client:
    insecure_skip_verify: false
    credentials_path: ${dir}/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: 127.0.0.1:${port}
    profiles_path: /etc/crowdsec/profiles.yaml
    trusted_ips:
      - 127.0.0.1
      - ::1
prometheus:
  enabled: false
  level: full
  listen_addr: 127.0.0.1
  listen_port: 6060
`;
}

/** Starts a fresh LAPI and waits until it answers. */
export async function startLapi(): Promise<Lapi> {
  requireCrowdsec();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'argos-lapi-'));
  fs.mkdirSync(path.join(dir, 'data'));
  const port = await freePort();
  const cfg = path.join(dir, 'config.yaml');
  fs.writeFileSync(cfg, configYaml(dir, port));
  const bouncerKey = randomBytes(16).toString('hex');
  const machineId = 'argos-test-machine';
  const machinePassword = randomBytes(18).toString('hex');
  const url = `http://127.0.0.1:${port}`;
  let proc: ChildProcess | null = null;
  let output = '';

  const cscli = (args: string[]): string => {
    const r = spawnSync('cscli', ['-c', cfg, '--error', ...args], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`cscli ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  cscli(['machines', 'add', 'ci-machine', '--auto', '--force', '-f', path.join(dir, 'local_api_credentials.yaml')]);
  cscli(['bouncers', 'add', 'argos-test', '-k', bouncerKey]);
  cscli(['machines', 'add', machineId, '--password', machinePassword, '--force', '-f', path.join(dir, 'argos-machine.yaml')]);

  const lapi: Lapi = {
    url,
    port,
    dir,
    bouncerKey,
    machineId,
    machinePassword,
    cscli,
    decisions() {
      const out = cscli(['decisions', 'list', '-a', '-o', 'json']).trim();
      const alerts = (out && out !== 'null' ? JSON.parse(out) : []) as Array<{ decisions?: LapiDecisionRow[] | null }>;
      return alerts.flatMap((a) => a.decisions ?? []);
    },
    agentReplay(logFile, type) {
      const etc = path.join(dir, 'agent-etc');
      if (!fs.existsSync(etc)) {
        for (const sub of ['parsers/s00-raw', 'parsers/s01-parse', 'parsers/s02-enrich', 'scenarios', 'collections', 'postoverflows']) fs.mkdirSync(path.join(etc, sub), { recursive: true });
        fs.copyFileSync('/etc/crowdsec/parsers/s00-raw/syslog-logs.yaml', path.join(etc, 'parsers/s00-raw/syslog-logs.yaml'));
        fs.copyFileSync('/etc/crowdsec/parsers/s02-enrich/dateparse-enrich.yaml', path.join(etc, 'parsers/s02-enrich/dateparse-enrich.yaml'));
        fs.copyFileSync(path.join(REPO, 'crowdsec/parsers/argos-auth.yaml'), path.join(etc, 'parsers/s01-parse/argos-auth.yaml'));
        fs.copyFileSync(path.join(REPO, 'crowdsec/scenarios/argos-bruteforce.yaml'), path.join(etc, 'scenarios/argos-bruteforce.yaml'));
        // Caddy's access log (acquisition type caddy): the packaged hub's caddy parser and one generic HTTP scenario.
        const hub = '/var/lib/crowdsec/hub';
        fs.copyFileSync(`${hub}/parsers/s01-parse/crowdsecurity/caddy-logs.yaml`, path.join(etc, 'parsers/s01-parse/caddy-logs.yaml'));
        fs.copyFileSync(`${hub}/parsers/s02-enrich/crowdsecurity/http-logs.yaml`, path.join(etc, 'parsers/s02-enrich/http-logs.yaml'));
        fs.copyFileSync(`${hub}/scenarios/crowdsecurity/http-probing.yaml`, path.join(etc, 'scenarios/http-probing.yaml'));
        for (const f of ['profiles.yaml', 'simulation.yaml']) fs.copyFileSync(`/etc/crowdsec/${f}`, path.join(etc, f));
        fs.cpSync('/etc/crowdsec/patterns', path.join(etc, 'patterns'), { recursive: true });
        fs.writeFileSync(
          path.join(dir, 'agent.yaml'),
          configYaml(dir, port).replace('config_dir: /etc/crowdsec/', `config_dir: ${etc}/`).replace('simulation_path: /etc/crowdsec/', `simulation_path: ${etc}/`),
        );
      }
      const r = spawnSync('crowdsec', ['-c', path.join(dir, 'agent.yaml'), '-dsn', `file://${logFile}`, '-type', type, '-no-api'], { encoding: 'utf8', timeout: 60_000 });
      const out = `${r.stdout}${r.stderr}`;
      if (r.status !== 0) throw new Error(`crowdsec agent replay failed (${r.status}): ${out.slice(-3000)}`);
      return out;
    },
    async start() {
      if (proc && proc.exitCode === null && proc.signalCode === null) return;
      const p = spawn('crowdsec', ['-c', cfg, '-no-cs'], { stdio: ['ignore', 'pipe', 'pipe'] });
      p.stdout!.on('data', (d) => (output += d));
      p.stderr!.on('data', (d) => (output += d));
      proc = p;
      // Never outlive the test process (a killed runner must not leave a LAPI behind).
      const reap = () => p.kill('SIGKILL');
      process.once('exit', reap);
      p.once('exit', () => process.removeListener('exit', reap));
      await waitFor(
        `CrowdSec LAPI on ${url}`,
        async () => {
          if (p.exitCode !== null) throw new Error(`crowdsec exited ${p.exitCode}: ${output.slice(-2000)}`);
          const r = await fetch(`${url}/v1/decisions/stream?startup=false`, { headers: { 'X-Api-Key': 'probe-not-a-key' } });
          return r.status === 403;
        },
        20_000,
      );
    },
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
        p.once('exit', () => (clearTimeout(t), resolve()));
        p.kill('SIGTERM');
      });
    },
    logs: () => output,
    async close() {
      await lapi.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await lapi.start();
  return lapi;
}
