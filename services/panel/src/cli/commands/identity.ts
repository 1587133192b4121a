/** `argos user totp enroll|recovery-codes|reset-2fa`, `argos admin disable-2fa`, `argos token create|list|revoke`. */
import { CLI_ACTOR } from '@argos/shared/audit';
import { issueApiToken, provisionTotp, regenerateRecoveryCodes, resetTotp, revokeToken } from '@argos/shared/commands/identity';
import { CommandError } from '@argos/shared/commands/errors';
import { getUser } from '@argos/shared/repos/users';
import { listUserTokens } from '@argos/shared/repos/tokens';
import { splitList } from '@argos/shared/settings';
import { flag, str, type Command } from '../framework.ts';
import { table } from '../table.ts';

const reset = (path: string[], summary: string): Command => ({
  path,
  summary,
  usage: `argos ${path.join(' ')} <username>`,
  args: 1,
  async run(ctx, a) {
    const { db } = await ctx.store();
    await resetTotp(db, CLI_ACTOR, a.positionals[0]!);
    ctx.out(`Two-factor authentication of ${a.positionals[0]} removed (TOTP and recovery codes); their sessions were ended.`);
  },
});

const when = (ms: number | null) => (ms ? new Date(ms).toISOString().slice(0, 16).replace('T', ' ') : '-');

export const identityCommands: Command[] = [
  {
    path: ['user', 'totp', 'enroll'],
    summary: 'Provision TOTP for a user: prints the otpauth URI and secret once',
    usage: 'argos user totp enroll <username> [--json]',
    args: 1,
    json: true,
    async run(ctx, a) {
      const { db, vault } = await ctx.store();
      const r = await provisionTotp(db, vault, CLI_ACTOR, a.positionals[0]!);
      if (ctx.wantsJson) return void ctx.json({ username: a.positionals[0], secret: r.secret, otpauth_uri: r.uri });
      ctx.out(`TOTP enrolled for ${a.positionals[0]}. Add it to their authenticator app (shown once):\n  secret: ${r.secret}\n  uri:    ${r.uri}\nThen issue recovery codes: argos user recovery-codes ${a.positionals[0]}`);
    },
  },
  {
    path: ['user', 'recovery-codes'],
    summary: 'Issue a fresh set of 10 recovery codes (printed once; the old ones stop working)',
    usage: 'argos user recovery-codes <username> [--json]',
    args: 1,
    json: true,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const codes = await regenerateRecoveryCodes(db, CLI_ACTOR, a.positionals[0]!);
      if (ctx.wantsJson) return void ctx.json({ username: a.positionals[0], recovery_codes: codes });
      ctx.out(`Recovery codes for ${a.positionals[0]} (each works once; shown only now):\n${codes.map((c) => '  ' + c).join('\n')}`);
    },
  },
  reset(['user', 'reset-2fa'], "Remove a user's TOTP and recovery codes (they can enroll again)"),
  reset(['admin', 'disable-2fa'], "Remove an admin's TOTP (recovery for a lost authenticator)"),
  {
    path: ['token', 'create'],
    summary: 'Create an API token for a user (printed once)',
    usage: 'argos token create <username> --name NAME [--hosts h1,h2] [--expires-days N|--no-expiry] [--admin-scope] [--json]',
    details: 'Hosts must opt in to tokens (argos host edit <domain> --allow-tokens true). --admin-scope makes a panel JSON API token (admins only).',
    options: { name: { type: 'string' }, hosts: { type: 'string' }, 'expires-days': { type: 'string' }, 'no-expiry': { type: 'boolean' }, 'admin-scope': { type: 'boolean' } },
    args: 1,
    json: true,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const days = flag(a, 'no-expiry') ? null : str(a, 'expires-days') ? Number(str(a, 'expires-days')) : 90;
      const t = await issueApiToken(db, CLI_ACTOR, a.positionals[0]!, { name: str(a, 'name') ?? '', hosts: splitList(str(a, 'hosts') ?? ''), expiresInDays: days, adminScope: flag(a, 'admin-scope') });
      if (ctx.wantsJson) return void ctx.json({ id: t.id, token: t.token, expires_at: t.expiresAt });
      ctx.out(`Token #${t.id} (shown once; send as "Authorization: Bearer <token>"):\n${t.token}`);
    },
  },
  {
    path: ['token', 'list'],
    summary: "List a user's API tokens (never the token values)",
    usage: 'argos token list <username> [--json]',
    args: 1,
    json: true,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const u = await getUser(db, a.positionals[0]!);
      if (!u) throw new CommandError(`no user ${a.positionals[0]}`, 404);
      const tokens = (await listUserTokens(db, u.id)).map((t) => ({ id: t.id, name: t.name, hosts: t.hosts, adminScope: t.adminScope, expiresAt: t.expiresAt, lastUsedAt: t.lastUsedAt, revoked: t.revokedAt !== null }));
      if (ctx.wantsJson) return void ctx.json(tokens);
      ctx.out(tokens.length ? table(['ID', 'NAME', 'HOSTS', 'EXPIRES', 'LAST USED', 'STATUS'], tokens.map((t) => [t.id, t.name, t.hosts.join(',') || '*', when(t.expiresAt), when(t.lastUsedAt), t.revoked ? 'revoked' : 'active'])) : 'No tokens.');
    },
  },
  {
    path: ['token', 'revoke'],
    summary: 'Revoke an API token by id',
    usage: 'argos token revoke <id>',
    args: 1,
    async run(ctx, a) {
      const id = Number(a.positionals[0]);
      if (!Number.isInteger(id)) throw new CommandError(`"${a.positionals[0]}" is not a token id (see argos token list <user>)`);
      const { db } = await ctx.store();
      await revokeToken(db, CLI_ACTOR, id);
      ctx.out(`Token #${id} revoked.`);
    },
  },
];
