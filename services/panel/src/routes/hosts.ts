/** Host pages: list, publish, edit, remove. Each saved change is pushed to Caddy and the outcome shown. */
import Router from '@koa/router';
import { defaultCookieDomain } from '@argos/shared/config';
import { CommandError, addHost, addHostRule, editHost, removeHost, removeHostRule, validateHost, type FieldErrors } from '@argos/shared/commands/hosts';
import { probeUpstreams } from '../probe.ts';
import { normalizeHost } from '@argos/shared/hostname';
import { POLICIES, TLS_MODES, getHost, hostDefaults, listHosts, type Host } from '@argos/shared/repos/hosts';
import { loadSettings } from '@argos/shared/settings';
import { cookieWarning, effectiveCookieDomains, hostForm, presentHost, type HostForm } from '../presenters.ts';
import { hostFormFromBody } from '../schemas.ts';
import { body, commandFailure, str, type Ctx, type PanelState, type Web } from '../web.ts';

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

  /** The Caddy route Argos generates for a host (from the full preview), for the editor's "what Caddy gets". */
  const routePreview = async (domain: string): Promise<string | null> => {
    try {
      const full = JSON.stringify(await web.deps.caddy.preview());
      const routes: unknown[] = [];
      JSON.parse(full, (_k, v) => (v && typeof v === 'object' && (v as Record<string, unknown>)['@id'] === `argos-host-${domain}` ? (routes.push(v), v) : v));
      return routes.length ? JSON.stringify(routes[0], null, 2) : null;
    } catch {
      return null;
    }
  };

  const showForm = async (
    ctx: Ctx,
    status: number,
    o: { host: Host | null; values: HostForm; errors?: FieldErrors; error?: string | null; checks?: { ok: boolean; text: string }[]; ruleErrors?: FieldErrors; ruleValues?: Record<string, string> },
  ) => {
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
        geoModes: ['inherit', 'off', 'allow', 'deny'],
        allowDeny: ['allow', 'deny'],
        cookieWarning: cookieWarning(o.values.domain, o.values.policy, await cookieDomains()),
        checks: o.checks ?? null,
        ruleErrors: o.ruleErrors ?? {},
        ruleValues: o.ruleValues ?? { policy: 'bypass' },
        preview: o.host ? await routePreview(o.host.domain) : null,
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

  /**
   * "Check before saving": validates the form and tries a TCP connection to each upstream (only when the
   * operator asks, so Argos never probes addresses on its own), without saving anything.
   */
  const check = async (ctx: Ctx, host: Host | null) => {
    const values = hostFormFromBody(body(ctx));
    const v = validateHost(values, host);
    if (!v.ok) return showForm(ctx, 400, { host, values, errors: v.errors, error: 'Please correct the highlighted fields.' });
    const checks = await probeUpstreams(v.value.upstreams);
    const warning = cookieWarning(v.value.domain, v.value.policy, await cookieDomains());
    if (warning) checks.unshift({ ok: false, text: warning });
    return showForm(ctx, 200, { host, values, checks });
  };

  r.post('/hosts', async (ctx) => {
    if (str(body(ctx).action) === 'check') return check(ctx, null);
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
    if (str(body(ctx).action) === 'check') return check(ctx, current);
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

  r.post('/hosts/:domain/rules', async (ctx) => {
    const host = await findHost(ctx.params.domain!);
    const b = body(ctx);
    const ruleValues = { policy: str(b.policy), paths: str(b.paths), methods: str(b.methods), networks: str(b.networks) };
    try {
      await addHostRule(db, web.actor(ctx), host.domain, ruleValues);
    } catch (e) {
      const f = commandFailure(e);
      if (!f || f.status === 404) throw e;
      return showForm(ctx, f.status, { host, values: hostForm(host), ruleErrors: f.errors, ruleValues, error: 'The rule was not added: see below.' });
    }
    web.flash(ctx, 'ok', 'Rule added. It applies within two seconds.');
    web.seeOther(ctx, hostPath(host.domain) + '#rules');
  });

  r.post('/hosts/:domain/rules/:id/delete', async (ctx) => {
    const host = await findHost(ctx.params.domain!);
    await removeHostRule(db, web.actor(ctx), host.domain, Number(ctx.params.id));
    web.flash(ctx, 'ok', 'Rule removed.');
    web.seeOther(ctx, hostPath(host.domain) + '#rules');
  });

  r.post('/hosts/:domain/delete', async (ctx) => {
    const host = await findHost(ctx.params.domain!);
    await removeHost(db, web.actor(ctx), host.domain);
    await web.applyAndFlash(ctx, `Host ${host.domain} removed.`);
    web.seeOther(ctx, '/hosts');
  });

  return r;
}
