/** Host pages: list, publish, edit, remove. Each saved change is pushed to Caddy and the outcome shown. */
import Router from '@koa/router';
import { defaultCookieDomain } from '@argos/shared/config';
import { CommandError, addHost, editHost, removeHost, type FieldErrors } from '@argos/shared/commands/hosts';
import { normalizeHost } from '@argos/shared/hostname';
import { POLICIES, TLS_MODES, getHost, hostDefaults, listHosts, type Host } from '@argos/shared/repos/hosts';
import { loadSettings } from '@argos/shared/settings';
import { cookieWarning, effectiveCookieDomains, hostForm, presentHost, type HostForm } from '../presenters.ts';
import { hostFormFromBody } from '../schemas.ts';
import { body, commandFailure, type Ctx, type PanelState, type Web } from '../web.ts';

export const hostPath = (domain: string) => `/hosts/${encodeURIComponent(domain)}`;

export function hostRoutes(web: Web): Router<PanelState> {
  const { db, config } = web.deps;
  const r = new Router<PanelState>();

  const cookieDomains = async () => effectiveCookieDomains(await loadSettings(db), defaultCookieDomain(config.portalUrl));

  const findHost = async (raw: string): Promise<Host> => {
    const host = await getHost(db, normalizeHost(raw) ?? raw);
    if (!host) throw new CommandError(`There is no host ${raw}.`, 404);
    return host;
  };

  const showForm = async (ctx: Ctx, status: number, o: { host: Host | null; values: HostForm; errors?: FieldErrors; error?: string | null }) => {
    web.render(
      ctx,
      'host-form',
      {
        pageTitle: o.host ? o.host.domain : 'Publish a host',
        section: 'hosts',
        host: o.host ? presentHost(o.host) : null,
        action: o.host ? hostPath(o.host.domain) : '/hosts',
        values: o.values,
        errors: o.errors ?? {},
        error: o.error ?? null,
        policies: POLICIES,
        tlsModes: TLS_MODES,
        cookieWarning: cookieWarning(o.values.domain, o.values.policy, await cookieDomains()),
      },
      status,
    );
  };

  /** The alert above a refused form: the command's message when no field carries it. */
  const formError = (f: { message: string; errors: FieldErrors }) => (Object.keys(f.errors).length ? 'Please correct the highlighted fields.' : f.message);

  r.get('/hosts', async (ctx) => {
    const [hosts, domains] = await Promise.all([listHosts(db), cookieDomains()]);
    web.render(ctx, 'hosts', {
      pageTitle: 'Hosts',
      section: 'hosts',
      hosts: hosts.map((h) => ({ ...presentHost(h), href: hostPath(h.domain), cookieWarning: cookieWarning(h.domain, h.policy, domains) })),
    });
  });

  r.get('/hosts/new', (ctx) => showForm(ctx, 200, { host: null, values: hostForm(hostDefaults('', [])) }));

  r.post('/hosts', async (ctx) => {
    const values = hostFormFromBody(body(ctx));
    let host: Host;
    try {
      host = await addHost(db, web.actor(ctx), values);
    } catch (e) {
      const f = commandFailure(e);
      if (!f) throw e;
      return showForm(ctx, f.status, { host: null, values, errors: f.errors, error: formError(f) });
    }
    await web.applyAndFlash(ctx, `Host ${host.domain} published.`);
    web.seeOther(ctx, hostPath(host.domain));
  });

  r.get('/hosts/:domain', async (ctx) => {
    const host = await findHost(ctx.params.domain!);
    await showForm(ctx, 200, { host, values: hostForm(host) });
  });

  r.post('/hosts/:domain', async (ctx) => {
    const current = await findHost(ctx.params.domain!);
    const values = hostFormFromBody(body(ctx));
    let host: Host;
    try {
      host = await editHost(db, web.actor(ctx), current.domain, values);
    } catch (e) {
      const f = commandFailure(e);
      if (!f || f.status === 404) throw e;
      return showForm(ctx, f.status, { host: current, values, errors: f.errors, error: formError(f) });
    }
    await web.applyAndFlash(ctx, `Host ${host.domain} saved.`);
    web.seeOther(ctx, hostPath(host.domain));
  });

  r.post('/hosts/:domain/delete', async (ctx) => {
    const host = await findHost(ctx.params.domain!);
    await removeHost(db, web.actor(ctx), host.domain);
    await web.applyAndFlash(ctx, `Host ${host.domain} removed.`);
    web.seeOther(ctx, '/hosts');
  });

  return r;
}
