/**
 * Caddy for scenario 2: the config Argos generates (buildCaddyConfig: forward_auth written out by hand, identity
 * headers, session cookie stripped, keep-alive pool to the gatekeeper) for one published plain-HTTP host, started as a
 * real Caddy process (startCaddy). The baseline is the same generator with `gatekeeperDial` pointed at the trivial
 * auth server, so both Caddy configs differ only in where forward_auth goes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildCaddyConfig } from '@argos/shared/caddy/config';
import { startCaddy, findCaddy, type CaddyProcess } from '@argos/shared/caddy/process';
import { spawnSync } from 'node:child_process';
import { freePort } from './argos.ts';

export interface BenchCaddy {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export function caddyVersion(): string | null {
  const bin = findCaddy();
  if (!bin) return null;
  return spawnSync(bin, ['version'], { encoding: 'utf8' }).stdout.trim().split(/\s+/)[0] ?? null;
}

export async function startBenchCaddy(o: { dir: string; domain: string; upstreamPort: number; authDial: string; portalUrl: URL }): Promise<BenchCaddy> {
  const port = await freePort();
  const adminPort = await freePort();
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const config = buildCaddyConfig({
    hosts: [{ domain: o.domain, upstreams: [`http://127.0.0.1:${o.upstreamPort}`], upstreamTlsVerify: true, tlsMode: 'off', enabled: true }],
    portal: o.portalUrl,
    panel: null,
    gatekeeperDial: o.authDial,
    httpPort: port,
    httpsPort: await freePort(),
    admin: { listen: `127.0.0.1:${adminPort}` },
    accessLog: null,
    bindHost: '127.0.0.1',
  });
  const caddy: CaddyProcess = await startCaddy({ config, configPath: path.join(o.dir, 'caddy.json'), adminListen: `127.0.0.1:${adminPort}`, dataDir: o.dir });
  return { port, pid: caddy.child.pid!, stop: () => caddy.stop() };
}
