#!/usr/bin/env node
// npm test: typecheck, lint, then every test file (unit tests next to the code, end-to-end suites in tests/)
// through node's test runner with the tsx loader. Exits non-zero on any failure.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const only = process.argv.slice(2);

function find(dir, out = []) {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) find(p, out);
    else if (e.name.endsWith('.test.ts')) out.push(path.relative(ROOT, p));
  }
  return out;
}

const run = (cmd, args) => {
  console.log(`\n$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ARGOS_LOG_LEVEL: process.env.ARGOS_LOG_LEVEL ?? 'silent' } });
  return r.status ?? 1;
};

if (!only.length) {
  if (run('npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']) !== 0) process.exit(1);
  if (run('npx', ['eslint', '.']) !== 0) process.exit(1);
}

const unit = [...find(path.join(ROOT, 'shared')), ...find(path.join(ROOT, 'services'))].sort();
const e2e = find(path.join(ROOT, 'tests')).sort();
const files = only.length ? only : [...unit, ...e2e];
console.log(`\nrunning ${files.length} test files`);
process.exit(run('node', ['--import', 'tsx', '--test', ...files]));
