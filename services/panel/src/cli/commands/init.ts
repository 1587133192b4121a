/** `argos init`: writes .env with a fresh ARGOS_MASTER_KEY when none exists. Never overwrites a key. */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseDotenv } from '@argos/shared/dotenv';
import { migrate } from '@argos/shared/db/migrate';
import type { Command } from '../framework.ts';

export const ENV_TEMPLATE = (key: string) => `# Argos configuration (created by \`argos init\`). See README.md for every variable.
# ARGOS_MASTER_KEY encrypts every secret in the database. Keep a copy in a password manager:
# losing it loses every stored secret. Never commit this file.
ARGOS_MASTER_KEY=${key}
# ARGOS_DATA_DIR=./data
# ARGOS_MODE=lan
# ARGOS_PORTAL_URL=https://auth.example.com
# ARGOS_PANEL_LISTEN=0.0.0.0:8080
# ARGOS_GATEKEEPER_LISTEN=127.0.0.1:9091
# ARGOS_CADDY_HTTP_PORT=80
# ARGOS_CADDY_HTTPS_PORT=443
`;

export const initCommand: Command = {
  path: ['init'],
  summary: 'Create .env with a new random ARGOS_MASTER_KEY (never overwrites an existing key)',
  usage: 'argos init [--file PATH]   (default .env in the current directory)',
  options: { file: { type: 'string' } },
  args: 0,
  async run(ctx, a) {
    const file = path.resolve(typeof a.values.file === 'string' ? a.values.file : '.env');
    const key = randomBytes(32).toString('hex');
    if (fs.existsSync(file)) {
      const existing = parseDotenv(fs.readFileSync(file, 'utf8'));
      if (existing.ARGOS_MASTER_KEY) {
        ctx.out(`${file} already has ARGOS_MASTER_KEY; nothing changed.`);
        return 0;
      }
      fs.appendFileSync(file, `\nARGOS_MASTER_KEY=${key}\n`, { mode: 0o600 });
    } else {
      fs.writeFileSync(file, ENV_TEMPLATE(key), { mode: 0o600, flag: 'wx' });
    }
    fs.chmodSync(file, 0o600);
    ctx.out(`Wrote a new ARGOS_MASTER_KEY to ${file} (mode 0600). Copy it into your password manager now.`);
    return 0;
  },
};

export const migrateCommand: Command = {
  path: ['migrate'],
  summary: 'Apply pending database migrations',
  usage: 'argos migrate',
  args: 0,
  async run(ctx) {
    const { db } = await ctx.store();
    const applied = await migrate(db);
    ctx.out(applied.length ? `Applied migrations: ${applied.join(', ')}` : 'Database schema is up to date.');
  },
};
