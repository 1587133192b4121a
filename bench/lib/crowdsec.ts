/**
 * A real CrowdSec Local API (Debian crowdsec 1.4, tests/lib/crowdsec.ts) loaded with N decisions through
 * `cscli decisions import -i file.csv` (supported by 1.4's cscli: CSV with a header line, columns
 * duration,scope,value,type,reason). The mix: 60% single IPv4 addresses, 20% single IPv6 addresses, 15% IPv4 ranges
 * (/16 to /30) and 5% IPv6 ranges (/32 to /64), all outside the addresses the other scenarios use as clients.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startLapi, requireCrowdsec, type Lapi } from '../../tests/lib/crowdsec.ts';

export { requireCrowdsec, type Lapi };

/** A small deterministic PRNG (mulberry32), so every run loads the same decisions. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Decision rows; never 8.0.0.0/8 (scenario clients), 127.0.0.0/8, 10/8, 192.168/16 nor 2001:4860::/32. */
export function decisionRows(n: number): string[] {
  const rnd = prng(42);
  const byte = () => Math.floor(rnd() * 256);
  const first = () => {
    for (;;) {
      const b = 11 + Math.floor(rnd() * 212); // 11..222
      if (b !== 127 && b !== 100 && b !== 172 && b !== 192) return b;
    }
  };
  const hex = () => Math.floor(rnd() * 65536).toString(16);
  const seen = new Set<string>();
  const rows: string[] = [];
  while (rows.length < n) {
    const r = rnd();
    let scope: string;
    let value: string;
    if (r < 0.6) {
      scope = 'ip';
      value = `${first()}.${byte()}.${byte()}.${byte()}`;
    } else if (r < 0.8) {
      scope = 'ip';
      value = `2a0${Math.floor(rnd() * 16).toString(16)}:${hex()}:${hex()}:${hex()}::${hex()}`;
    } else if (r < 0.95) {
      scope = 'range';
      const len = 16 + Math.floor(rnd() * 15);
      const ip = (first() * 2 ** 24 + byte() * 2 ** 16 + byte() * 2 ** 8 + byte()) >>> 0;
      const net = len === 0 ? 0 : (ip >>> (32 - len)) << (32 - len);
      value = `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${len}`;
    } else {
      scope = 'range';
      const len = [32, 40, 48, 56, 64][Math.floor(rnd() * 5)]!;
      const groups = [`2a0${Math.floor(rnd() * 16).toString(16)}`, hex(), hex(), hex()].slice(0, len / 16);
      if (len % 16) groups.push((Math.floor(rnd() * 256) << 8).toString(16));
      value = `${groups.join(':')}::/${len}`;
    }
    if (seen.has(value)) continue;
    seen.add(value);
    rows.push(`4h,${scope},${value},ban,argos-bench`);
  }
  return rows;
}

/** cscli as an async child: the LAPI logs every call to its piped stdout, which a blocking spawnSync would stop draining (deadlock). */
function cscliAsync(lapi: Lapi, args: string[], timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('cscli', ['-c', path.join(lapi.dir, 'config.yaml'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('exit', (code) => {
      clearTimeout(t);
      if (code === 0) resolve(out);
      else reject(new Error(`cscli ${args.join(' ')} failed (${code}): ${out.slice(-2000)}`));
    });
  });
}

/** Starts a LAPI and imports `n` decisions; `loaded` is how many active decisions the LAPI then lists. */
export async function lapiWithDecisions(n: number): Promise<{ lapi: Lapi; loaded: number; importMs: number }> {
  const lapi = await startLapi();
  try {
    const file = path.join(lapi.dir, 'bench-decisions.csv');
    fs.writeFileSync(file, ['duration,scope,value,type,reason', ...decisionRows(n)].join('\n') + '\n');
    const t = Date.now();
    await cscliAsync(lapi, ['--error', 'decisions', 'import', '-i', file]);
    const importMs = Date.now() - t;
    // All active decisions (not the stream endpoint: that would move the bouncer's stream position).
    const r = await fetch(`${lapi.url}/v1/decisions`, { headers: { 'X-Api-Key': lapi.bouncerKey } });
    const body = (await r.json()) as unknown[] | null;
    return { lapi, loaded: body?.length ?? 0, importMs };
  } catch (e) {
    await lapi.close();
    throw e;
  }
}
