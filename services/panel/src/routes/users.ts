/** User pages: list, create, edit (profile, groups, admin, disabled), set a password, delete. */
import Router from '@koa/router';
import { CommandError, type FieldErrors } from '@argos/shared/commands/hosts';
import { addUser, editUser, presentUser, removeUser, setPassword } from '@argos/shared/commands/users';
import { getUser, listUsers, type User } from '@argos/shared/repos/users';
import { startSession } from '../auth.ts';
import { assertNotSelfLockout } from '../policies.ts';
import { userForm, type UserForm } from '../presenters.ts';
import { userFormFromBody } from '../schemas.ts';
import { body, commandFailure, str, type Ctx, type PanelState, type Web } from '../web.ts';

export const userPath = (username: string) => `/users/${encodeURIComponent(username)}`;

const EMPTY: UserForm = { username: '', email: '', displayName: '', groups: '', isAdmin: false, disabled: false };

export function userRoutes(web: Web): Router<PanelState> {
  const { db } = web.deps;
  const r = new Router<PanelState>();

  const findUser = async (raw: string): Promise<User> => {
    const user = await getUser(db, raw);
    if (!user) throw new CommandError(`There is no user ${raw}.`, 404);
    return user;
  };

  const formError = (f: { message: string; errors: FieldErrors }) => (Object.keys(f.errors).length ? 'Please correct the highlighted fields.' : f.message);

  const showForm = (
    ctx: Ctx,
    status: number,
    o: { user: User | null; values: UserForm; errors?: FieldErrors; error?: string | null; pwErrors?: FieldErrors; pwError?: string | null },
  ) => {
    web.render(
      ctx,
      'user-form',
      {
        pageTitle: o.user ? o.user.username : 'New user',
        section: 'users',
        user: o.user ? presentUser(o.user) : null,
        self: o.user?.id === ctx.state.user!.id,
        action: o.user ? userPath(o.user.username) : '/users',
        values: o.values,
        errors: o.errors ?? {},
        error: o.error ?? null,
        pwErrors: o.pwErrors ?? {},
        pwError: o.pwError ?? null,
      },
      status,
    );
  };

  r.get('/users', async (ctx) => {
    const users = await listUsers(db);
    web.render(ctx, 'users', { pageTitle: 'Users', section: 'users', users: users.map((u) => ({ ...presentUser(u), href: userPath(u.username) })) });
  });

  r.get('/users/new', (ctx) => showForm(ctx, 200, { user: null, values: EMPTY }));

  r.post('/users', async (ctx) => {
    const b = body(ctx);
    const values = userFormFromBody(b);
    let user: User;
    try {
      user = await addUser(db, web.actor(ctx), { ...values, disabled: undefined, password: str(b.password) });
    } catch (e) {
      const f = commandFailure(e);
      if (!f) throw e;
      return showForm(ctx, f.status, { user: null, values, errors: f.errors, error: formError(f) });
    }
    web.flash(ctx, 'ok', `User ${user.username} created.`);
    web.seeOther(ctx, userPath(user.username));
  });

  r.get('/users/:username', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    showForm(ctx, 200, { user, values: userForm(user) });
  });

  r.post('/users/:username', async (ctx) => {
    const current = await findUser(ctx.params.username!);
    const values = { ...userFormFromBody(body(ctx)), username: current.username };
    let user: User;
    try {
      assertNotSelfLockout(ctx.state.user!, current.username, values);
      user = await editUser(db, web.actor(ctx), current.username, {
        email: values.email,
        displayName: values.displayName,
        groups: values.groups,
        isAdmin: values.isAdmin,
        disabled: values.disabled,
      });
    } catch (e) {
      const f = commandFailure(e);
      if (!f || f.status === 404) throw e;
      return showForm(ctx, f.status, { user: current, values, errors: f.errors, error: formError(f) });
    }
    web.flash(ctx, 'ok', user.disabled && !current.disabled ? `User ${user.username} disabled and signed out everywhere.` : `User ${user.username} saved.`);
    web.seeOther(ctx, userPath(user.username));
  });

  r.post('/users/:username/password', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    const b = body(ctx);
    const password = str(b.password);
    const mustChange = str(b.mustChange) !== '';
    const self = user.id === ctx.state.user!.id;
    try {
      if (password !== str(b.password_confirm)) throw new CommandError('passwords differ', 400, { password_confirm: 'The two passwords differ.' });
      await setPassword(db, web.actor(ctx), user.username, password, mustChange);
    } catch (e) {
      const f = commandFailure(e);
      if (!f || f.status === 404) throw e;
      return showForm(ctx, f.status, { user, values: userForm(user), pwErrors: f.errors, pwError: formError(f) });
    }
    // Setting a password ends every session of the user; keep this browser signed in when it is the operator's own.
    if (self) await startSession(web, ctx, { ...user, mustChangePassword: mustChange }, 'password_change');
    web.flash(ctx, 'ok', `Password of ${user.username} set${mustChange ? ' (to be changed at next sign-in)' : ''}. Their sessions were signed out.`);
    web.seeOther(ctx, self && mustChange ? '/account/password' : userPath(user.username));
  });

  r.post('/users/:username/delete', async (ctx) => {
    const user = await findUser(ctx.params.username!);
    try {
      assertNotSelfLockout(ctx.state.user!, user.username, { delete: true });
      await removeUser(db, web.actor(ctx), user.username);
    } catch (e) {
      const f = commandFailure(e);
      if (!f || f.status === 404) throw e;
      web.flash(ctx, 'error', f.message);
      return web.seeOther(ctx, userPath(user.username));
    }
    web.flash(ctx, 'ok', `User ${user.username} deleted.`);
    web.seeOther(ctx, '/users');
  });

  return r;
}
