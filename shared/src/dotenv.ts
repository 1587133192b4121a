/** Minimal .env reading and writing (KEY=VALUE lines, # comments). Argos writes .env only in `argos init`. */
import fs from 'node:fs';

export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\s*$/.exec(line);
    if (!m) continue;
    let v = m[2]!;
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
    out[m[1]!] = v;
  }
  return out;
}

/** Loads a .env file into `env` without overriding variables already set. Returns false when there is no file. */
export function loadDotenv(file: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (!fs.existsSync(file)) return false;
  for (const [k, v] of Object.entries(parseDotenv(fs.readFileSync(file, 'utf8')))) {
    if (env[k] === undefined) env[k] = v;
  }
  return true;
}
