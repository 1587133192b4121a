#!/usr/bin/env node
// npm start: runs Argos on an embedded default. Creates .env (fresh master key) on first run, then starts
// the panel (migrates, creates the initial admin, starts and configures Caddy when installed) and the gatekeeper.
// Ctrl-C stops everything cleanly.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const ENV_FILE = path.resolve(process.env.ARGOS_ENV_FILE ?? path.join(process.cwd(), '.env'));
const node = process.execPath;
const argos = path.join(ROOT, 'services/panel/bin/argos.mjs');

// First run on a fresh clone: install the npm dependencies (native modules build from source here).
if (!fs.existsSync(path.join(ROOT, 'node_modules', 'tsx'))) {
  console.log('argos: installing dependencies (npm ci, first run only)…');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (!fs.existsSync(ENV_FILE)) {
  const r = spawnSync(node, [argos, 'init', '--file', ENV_FILE], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
for (const line of fs.readFileSync(ENV_FILE, 'utf8').split(/\r?\n/)) {
  const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
  if (m && process.env[m[1]] === undefined) process.env[m[1]] = m[2].replace(/^(['"])(.*)\1$/, '$2');
}

const children = new Map();
let stopping = false;

function start(name, file) {
  const child = spawn(node, ['--import', import.meta.resolve('tsx'), path.join(ROOT, file)], { stdio: 'inherit', env: process.env, cwd: process.cwd() });
  children.set(name, child);
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (!stopping) {
      console.error(`argos: ${name} exited (${signal ?? code}); stopping the rest`);
      stop(code || 1);
    } else if (!children.size) process.exit(exitCode);
  });
}

let exitCode = 0;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  exitCode = code;
  for (const c of children.values()) c.kill('SIGTERM');
  if (!children.size) process.exit(code);
  setTimeout(() => {
    for (const c of children.values()) c.kill('SIGKILL');
    process.exit(code);
  }, 10_000).unref();
}

process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
process.on('SIGHUP', () => stop(0));
// When whatever launched us (npm, a shell) goes away without passing the signal on, stop rather than orphan the services.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop(0);
}, 2000).unref();

start('panel', 'services/panel/src/main.ts');
start('gatekeeper', 'services/gatekeeper/src/main.ts');
