/** `argos caddy config|apply`: print the generated Caddy JSON, or push it to Caddy's admin API. */
import type { Command } from '../framework.ts';

export const caddyCommands: Command[] = [];
