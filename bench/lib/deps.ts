/**
 * System tools the benchmark needs: wrk (load), caddy (scenario 2), crowdsec + cscli (a real LAPI for scenario 1's
 * decisions). As root, missing ones are installed with apt-get (CrowdSec with the offline recipe: a non-empty Central
 * API credentials file first, shared/docs/real-components.md §3); otherwise the exact command is printed and the run stops.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const NEEDED = [
  { bin: 'wrk', pkg: 'wrk' },
  { bin: 'caddy', pkg: 'caddy' },
  { bin: 'crowdsec', pkg: 'crowdsec' },
  { bin: 'cscli', pkg: 'crowdsec' },
];
const CROWDSEC_CREDS = '/etc/crowdsec/online_api_credentials.yaml';

const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;

export function ensureBenchDeps(): void {
  const missing = [...new Set(NEEDED.filter((n) => !has(n.bin)).map((n) => n.pkg))];
  if (!missing.length) return;
  const offline = `mkdir -p /etc/crowdsec && { [ -s ${CROWDSEC_CREDS} ] || echo '# offline: no Central API' > ${CROWDSEC_CREDS}; }`;
  const command = `apt-get update && ${offline} && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `missing system tools for the benchmark: ${missing.join(', ')}. Install them as root, then run npm run bench again:\n\n  sudo sh -c "${command}"\n`,
    );
  }
  process.stdout.write(`installing ${missing.join(', ')} with apt-get…\n`);
  fs.mkdirSync('/etc/crowdsec', { recursive: true });
  if (!fs.existsSync(CROWDSEC_CREDS) || fs.statSync(CROWDSEC_CREDS).size === 0) fs.writeFileSync(CROWDSEC_CREDS, '# offline: no Central API\n');
  const r = spawnSync('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`], { stdio: 'inherit' });
  const still = NEEDED.filter((n) => !has(n.bin)).map((n) => n.bin);
  if (r.status !== 0 || still.length)
    throw new Error(`installing ${missing.join(', ')} failed (still missing: ${still.join(', ') || 'none'}); run:\n\n  ${command}\n`);
}
