/**
 * A small command framework for the `argos` CLI: command table, `--help` on every command,
 * `--json` output, typed errors → exit codes. Commands stay thin and call the shared command layer.
 */
import { parseArgs } from 'node:util';
import type { Config } from '@argos/shared/config';
import { loadConfig, ConfigError } from '@argos/shared/config';
import { openStore, type Store } from '@argos/shared/store';
import { CommandError } from '@argos/shared/commands/errors';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export interface Args {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export interface CliContext {
  env: NodeJS.ProcessEnv;
  config(): Config;
  store(): Promise<Store>;
  out(text: string): void;
  err(text: string): void;
  json(data: unknown): void;
  stdin(): Promise<string>;
  wantsJson: boolean;
}

export interface Command {
  path: string[];
  summary: string;
  usage: string;
  details?: string;
  options?: OptionSpec;
  /** Positional arguments required (exactly this many, unless `variadic`). */
  args?: number;
  json?: boolean;
  run(ctx: CliContext, a: Args): Promise<number | void>;
}

export class UsageError extends Error {}

export function str(a: Args, name: string): string | undefined {
  const v = a.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function flag(a: Args, name: string): boolean {
  return a.values[name] === true;
}

export function helpText(c: Command): string {
  const lines = [`Usage: ${c.usage}`, '', c.summary];
  if (c.details) lines.push('', c.details);
  if (c.json) lines.push('', '  --json    print machine-readable JSON');
  lines.push('  --help    show this help');
  return lines.join('\n');
}

export function overview(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.path.join(' ').length));
  return [
    'Usage: argos <command> [options]   (argos <command> --help for details)',
    '',
    ...commands.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

/** Runs the CLI; returns the exit code. */
export async function runCli(commands: Command[], argv: string[], io: { env: NodeJS.ProcessEnv; stdout: (s: string) => void; stderr: (s: string) => void; readStdin: () => Promise<string> }): Promise<number> {
  const words = argv.filter((a) => !a.startsWith('-'));
  let cmd: Command | undefined;
  for (const c of commands) {
    if (c.path.every((p, i) => words[i] === p) && (!cmd || c.path.length > cmd.path.length)) cmd = c;
  }
  if (!cmd) {
    if (argv.length === 0 || argv.includes('--help') || argv[0] === 'help') {
      io.stdout(overview(commands) + '\n');
      return 0;
    }
    io.stderr(`argos: unknown command "${words.join(' ')}"\n\n${overview(commands)}\n`);
    return 2;
  }
  const rest = [...argv];
  for (const p of cmd.path) rest.splice(rest.indexOf(p), 1);
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(helpText(cmd) + '\n');
    return 0;
  }
  let parsed: Args;
  try {
    const options = { ...(cmd.options ?? {}), ...(cmd.json ? { json: { type: 'boolean' as const } } : {}) };
    const p = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    parsed = { values: p.values as Args['values'], positionals: p.positionals };
    if (cmd.args !== undefined && parsed.positionals.length !== cmd.args) throw new UsageError(`expected ${cmd.args} argument(s), got ${parsed.positionals.length}`);
  } catch (e) {
    io.stderr(`argos ${cmd.path.join(' ')}: ${e instanceof Error ? e.message : String(e)}\n\n${helpText(cmd)}\n`);
    return 2;
  }

  let config: Config | null = null;
  let store: Store | null = null;
  const ctx: CliContext = {
    env: io.env,
    wantsJson: parsed.values.json === true,
    config: () => (config ??= loadConfig(io.env)),
    store: async () => (store ??= await openStore(ctx.config(), 'migrator')),
    out: (t) => io.stdout(t + '\n'),
    err: (t) => io.stderr(t + '\n'),
    json: (d) => io.stdout(JSON.stringify(d, null, 2) + '\n'),
    stdin: io.readStdin,
  };
  try {
    return (await cmd.run(ctx, parsed)) ?? 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      io.stderr(e.message + '\n');
      return 1;
    }
    if (e instanceof CommandError) {
      io.stderr(`argos ${cmd.path.join(' ')}: ${e.message}\n`);
      for (const [field, msg] of Object.entries(e.errors)) io.stderr(`  ${field}: ${msg}\n`);
      return 1;
    }
    if (e instanceof UsageError) {
      io.stderr(`argos ${cmd.path.join(' ')}: ${e.message}\n\n${helpText(cmd)}\n`);
      return 2;
    }
    io.stderr(`argos ${cmd.path.join(' ')}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    if (store) await (store as Store).db.close();
  }
}

/** Reads a secret or password from standard input (one value; a trailing newline is removed). */
export async function readAllStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('(reading from standard input; end with Ctrl-D)\n');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}
