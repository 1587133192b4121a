/** `argos user …` and `argos admin …`: accounts from the command line. Passwords only on standard input. */
import { CLI_ACTOR } from '@argos/shared/audit';
import { addUser, editUser, presentUser, resetAdminPassword, setPassword } from '@argos/shared/commands/users';
import { listUsers } from '@argos/shared/repos/users';
import { flag, str, UsageError, type Command, type CliContext, type Args } from '../framework.ts';
import { table } from '../table.ts';

const profileOptions = {
  'password-stdin': { type: 'boolean' },
  email: { type: 'string' },
  name: { type: 'string' },
  groups: { type: 'string' },
  admin: { type: 'boolean' },
} as const;

async function passwordFromStdin(ctx: CliContext, a: Args): Promise<string> {
  if (!flag(a, 'password-stdin')) throw new UsageError('the password is read from standard input: pass --password-stdin (never on the command line)');
  return ctx.stdin();
}

const create = (admin: boolean): Command => ({
  path: admin ? ['admin', 'create'] : ['user', 'add'],
  summary: admin ? 'Create a panel admin (password from stdin)' : 'Create a user (password from stdin)',
  usage: `argos ${admin ? 'admin create' : 'user add'} <username> --password-stdin [--email E] [--name N] [--groups a,b]${admin ? '' : ' [--admin]'}`,
  details: 'Example: printf %s "$PASSWORD" | argos user add alice --password-stdin --email alice@example.com --groups family',
  options: profileOptions,
  args: 1,
  json: true,
  async run(ctx, a) {
    const password = await passwordFromStdin(ctx, a);
    const { db } = await ctx.store();
    const user = await addUser(db, CLI_ACTOR, {
      username: a.positionals[0],
      password,
      email: str(a, 'email') ?? null,
      displayName: str(a, 'name') ?? null,
      groups: str(a, 'groups'),
      isAdmin: admin || flag(a, 'admin'),
    });
    if (ctx.wantsJson) ctx.json(presentUser(user));
    else ctx.out(`Created ${user.isAdmin ? 'admin' : 'user'} ${user.username}.`);
  },
});

export const userCommands: Command[] = [
  create(false),
  create(true),
  {
    path: ['user', 'list'],
    summary: 'List users',
    usage: 'argos user list [--json]',
    args: 0,
    json: true,
    async run(ctx) {
      const { db } = await ctx.store();
      const users = (await listUsers(db)).map(presentUser);
      if (ctx.wantsJson) return void ctx.json(users);
      ctx.out(users.length ? table(['USERNAME', 'EMAIL', 'NAME', 'GROUPS', 'ADMIN', 'TOTP', 'STATUS'], users.map((u) => [u.username, u.email, u.displayName, u.groups.join(','), u.isAdmin ? 'yes' : '', u.totp ? 'yes' : '', u.disabled ? 'disabled' : 'active'])) : 'No users yet.');
    },
  },
  {
    path: ['user', 'edit'],
    summary: "Change a user's e-mail, name, groups or admin flag",
    usage: 'argos user edit <username> [--email E] [--name N] [--groups a,b] [--admin|--no-admin]',
    options: { email: { type: 'string' }, name: { type: 'string' }, groups: { type: 'string' }, admin: { type: 'boolean' }, 'no-admin': { type: 'boolean' } },
    args: 1,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const u = await editUser(db, CLI_ACTOR, a.positionals[0]!, {
        email: str(a, 'email'),
        displayName: str(a, 'name'),
        groups: str(a, 'groups'),
        isAdmin: flag(a, 'admin') ? true : flag(a, 'no-admin') ? false : undefined,
      });
      ctx.out(`Updated ${u.username}.`);
    },
  },
  ...(['disable', 'enable'] as const).map(
    (verb): Command => ({
      path: ['user', verb],
      summary: verb === 'disable' ? 'Disable a user and end all their sessions' : 'Enable a disabled user',
      usage: `argos user ${verb} <username>`,
      args: 1,
      async run(ctx, a) {
        const { db } = await ctx.store();
        const u = await editUser(db, CLI_ACTOR, a.positionals[0]!, { disabled: verb === 'disable' });
        ctx.out(`${u.username} is now ${u.disabled ? 'disabled (sessions ended)' : 'enabled'}.`);
      },
    }),
  ),
  {
    path: ['user', 'set-password'],
    summary: "Set a user's password from stdin (ends that user's sessions)",
    usage: 'argos user set-password <username> --password-stdin',
    options: { 'password-stdin': { type: 'boolean' } },
    args: 1,
    async run(ctx, a) {
      const password = await passwordFromStdin(ctx, a);
      const { db } = await ctx.store();
      await setPassword(db, CLI_ACTOR, a.positionals[0]!, password);
      ctx.out(`Password of ${a.positionals[0]} changed; their sessions were ended.`);
    },
  },
  {
    path: ['admin', 'reset-password'],
    summary: "Recover a lost admin password: prints a one-time password that must be changed at sign-in",
    usage: 'argos admin reset-password <username> [--json]',
    args: 1,
    json: true,
    async run(ctx, a) {
      const { db } = await ctx.store();
      const once = await resetAdminPassword(db, CLI_ACTOR, a.positionals[0]!);
      if (ctx.wantsJson) return void ctx.json({ username: a.positionals[0], one_time_password: once });
      ctx.out(`One-time password for ${a.positionals[0]}: ${once}\nSign in to the panel with it; you will be asked to choose a new password. Their sessions were ended.`);
    },
  },
];
