/** The `argos` CLI entry: loads ./.env (without overriding the environment) and runs one command. */
import path from 'node:path';
import { loadDotenv } from '@argos/shared/dotenv';
import { runCli, readAllStdin, type Command } from './framework.ts';
import { initCommand, migrateCommand } from './commands/init.ts';
import { userCommands } from './commands/users.ts';
import { hostCommands } from './commands/hosts.ts';
import { settingsCommands } from './commands/settings.ts';
import { caddyCommands } from './commands/caddy.ts';
import { checkCommand } from './commands/check.ts';
import { geoCommands } from './commands/geo.ts';
import { identityCommands } from './commands/identity.ts';
import { banCommands } from './commands/bans.ts';
import { backupCommands } from './commands/backup.ts';
import { auditCommands } from './commands/audit.ts';
import { notifyCommands } from './commands/notify.ts';

export const COMMANDS: Command[] = [initCommand, migrateCommand, ...userCommands, ...identityCommands, ...banCommands, ...hostCommands, ...caddyCommands, ...settingsCommands, checkCommand, ...geoCommands, ...backupCommands, ...auditCommands, ...notifyCommands];

process.umask(0o077);
loadDotenv(path.resolve(process.env.ARGOS_ENV_FILE ?? '.env'));
const code = await runCli(COMMANDS, process.argv.slice(2), {
  env: process.env,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  readStdin: readAllStdin,
});
process.exitCode = code;
