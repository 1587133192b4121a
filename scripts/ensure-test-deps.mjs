#!/usr/bin/env node
// pretest: makes sure the system test dependencies are installed (caddy, crowdsec with its LAPI, chromium).
// As root it installs missing ones with apt-get; otherwise it fails with the exact command to run. Never a silent skip.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';

const NEEDED = [
  { bin: 'caddy', pkg: 'caddy' },
  { bin: 'crowdsec', pkg: 'crowdsec' },
  { bin: 'cscli', pkg: 'crowdsec' },
  { bin: 'chromium', pkg: 'chromium' },
];
const CROWDSEC_CREDS = '/etc/crowdsec/online_api_credentials.yaml';

// A fresh clone without node_modules: install the npm dependencies first.
if (!fs.existsSync(new URL('../node_modules/tsx', import.meta.url))) {
  console.log('installing npm dependencies (npm ci)…');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: new URL('..', import.meta.url), stdio: 'inherit' });
}

const has = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
const missing = [...new Set(NEEDED.filter((n) => !has(n.bin)).map((n) => n.pkg))];
// A crowdsec package left half-configured by an online postinst needs the offline credentials file and a reconfigure.
const crowdsecBroken = has('dpkg') && spawnSync('sh', ['-c', "dpkg -s crowdsec 2>/dev/null | grep -q '^Status: install ok half-configured'"]).status === 0;

if (!missing.length && !crowdsecBroken) {
  console.log('test dependencies: caddy, crowdsec, chromium present');
  process.exit(0);
}

const offlineCreds = `mkdir -p /etc/crowdsec && [ -s ${CROWDSEC_CREDS} ] || echo '# offline: no Central API' > ${CROWDSEC_CREDS}`;
const command = `apt-get update && ${offlineCreds} && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing.join(' ') || 'crowdsec'}${crowdsecBroken ? ' && dpkg --configure -a' : ''}`;

if (process.getuid?.() !== 0) {
  console.error(`Missing system test dependencies: ${missing.join(', ') || 'crowdsec (half-configured)'}.\nInstall them as root, then run npm test again:\n\n  sudo sh -c "${command}"\n`);
  process.exit(1);
}

console.log(`installing test dependencies: ${missing.join(', ') || 'crowdsec reconfigure'} (apt-get)`);
try {
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  fs.mkdirSync('/etc/crowdsec', { recursive: true });
  if (!fs.existsSync(CROWDSEC_CREDS) || fs.statSync(CROWDSEC_CREDS).size === 0) fs.writeFileSync(CROWDSEC_CREDS, '# offline: no Central API\n');
  if (missing.length) {
    execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  if (crowdsecBroken) execFileSync('dpkg', ['--configure', '-a'], { stdio: 'inherit' });
} catch (e) {
  console.error(`apt-get failed (${e.message}). Run this yourself and retry:\n\n  ${command}\n`);
  process.exit(1);
}
const still = NEEDED.filter((n) => !has(n.bin)).map((n) => n.bin);
if (still.length) {
  console.error(`still missing after install: ${still.join(', ')}`);
  process.exit(1);
}
console.log('test dependencies installed');
