/**
 * Settings → Single sign-on (GET/POST /settings/oidc): provider, client ID, client secret (write-only: stored
 * encrypted, never shown again; blank keeps it), scopes, the policy settings, the redirect URIs to register
 * (with copy buttons from a static script: the CSP allows no inline script), "Test connection" (discovery,
 * showing what the provider advertises), and linking the signed-in admin to their SSO identity.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';
import pug from 'pug';
import { changeSetting, clearSecret, storeSecret } from '@argos/shared/commands/settings';
import { CommandError, type FieldErrors } from '@argos/shared/commands/errors';
import { formatSetting, loadSettings, parseSetting, type SettingKey, type SettingsMap } from '@argos/shared/settings';
import { secretStatus } from '@argos/shared/secrets';
import { compileAllowList } from '@argos/shared/oidc/email';
import { describeProvider, issuerUrl, OidcUnavailable, type ProviderReport } from '@argos/shared/oidc/flow';
import { ssoEnabled } from '@argos/shared/oidc/mode';
import { unlinkUser } from '@argos/shared/oidc/identity';
import { beginPanelSso, panelOrigin, panelRedirectUri } from '../sso.ts';
import { REAUTH_WINDOW_MS } from '../auth.ts';
import { body, fmt, str, type Ctx, type PanelState, type Web } from '../web.ts';

const VIEW = pug.compileFile(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'views', 'oidc-settings.pug'));

/** The form field of a setting: its name without the oidc. prefix (form bodies treat dots as nesting). */
const fieldOf = (key: SettingKey) => key.slice('oidc.'.length);

/** Text fields of the form, in order. */
const TEXT: Array<{ key: SettingKey; label: string; hint?: string }> = [
  {
    key: 'oidc.issuer',
    label: 'Issuer URL',
    hint: 'Exactly as the provider advertises it, e.g. https://accounts.google.com or https://authentik.example.com/application/o/argos/',
  },
  { key: 'oidc.client_id', label: 'Client ID' },
  { key: 'oidc.scopes', label: 'Scopes', hint: 'Space-separated; openid is always sent. Add groups when the provider needs it for the groups claim.' },
  { key: 'oidc.button_label', label: 'Button label', hint: 'Shown on the portal and panel sign-in pages.' },
  {
    key: 'oidc.allowed_domains',
    label: 'Allowed e-mail domains',
    hint: 'Comma-separated, exact (no subdomains unless listed). Empty together with allowed e-mails = anyone the provider signs in.',
  },
  { key: 'oidc.allowed_emails', label: 'Allowed e-mail addresses', hint: 'Comma-separated.' },
  {
    key: 'oidc.groups_claim',
    label: 'Groups claim',
    hint: 'When the provider sends it, it replaces the Argos groups of SSO users at each sign-in. Empty = manage groups in Argos.',
  },
];

const BOOLS: Array<{ key: SettingKey; label: string }> = [
  { key: 'oidc.enabled', label: 'Single sign-on is on' },
  { key: 'oidc.auto_provision', label: 'Create Argos users (never admins) at their first sign-in' },
  { key: 'oidc.require_email_verified', label: 'Require a verified e-mail address (email_verified)' },
  { key: 'oidc.link_existing', label: 'Link a first sign-in to the existing user with the same verified e-mail (never an admin)' },
  { key: 'oidc.trust_idp_mfa', label: "Count the provider's MFA (amr/acr) as the second factor on two_factor hosts" },
  { key: 'oidc.rp_logout', label: 'Signing out of Argos also signs out at the provider' },
];

const DONE: Record<string, string> = {
  saved: 'Single sign-on settings saved.',
  linked: 'Your account is now linked to your single sign-on identity: you can sign in to the panel with it.',
  unlinked: 'Your account is no longer linked to a single sign-on identity; its SSO sessions were ended.',
};

export function oidcSettingsRoutes(web: Web): Router<PanelState> {
  const { db, vault, config } = web.deps;
  const r = new Router<PanelState>();

  const show = async (
    ctx: Ctx,
    o: { status?: number; values?: Record<string, string>; errors?: FieldErrors; report?: ProviderReport | null; error?: string; notice?: string } = {},
  ) => {
    const s = await loadSettings(db);
    const secret = (await secretStatus(db)).find((x) => x.name === 'oidc.client_secret');
    const values: Record<string, string> = {};
    for (const { key } of [...TEXT, ...BOOLS]) values[fieldOf(key)] = formatSetting(key, s[key]);
    Object.assign(values, o.values ?? {});
    const origin = panelOrigin(web, ctx);
    const invalid = compileAllowList({ emails: s['oidc.allowed_emails'], domains: s['oidc.allowed_domains'] }).invalid;
    const me = ctx.state.user!;
    ctx.status = o.status ?? 200;
    ctx.type = 'html';
    ctx.body = VIEW({
      appTitle: 'Argos',
      pageTitle: 'Single sign-on',
      section: 'settings',
      me: { username: me.username, mustChangePassword: me.mustChangePassword },
      csrf: ctx.state.csrfToken ?? '',
      lanMode: config.mode === 'lan',
      flash: null,
      fmt,
      errors: o.errors ?? {},
      error: o.error,
      notice: o.notice ?? DONE[str(ctx.query.done)] ?? null,
      text: TEXT.map((f) => ({ ...f, field: fieldOf(f.key) })),
      bools: BOOLS.map((f) => ({ ...f, field: fieldOf(f.key) })),
      values,
      checks: Object.fromEntries(BOOLS.map(({ key }) => [fieldOf(key), values[fieldOf(key)] === 'true'])),
      secret: { set: !!secret?.set, updatedAt: secret?.updatedAt ?? null },
      effective: ssoEnabled(config, s),
      envOff: config.oidcEnabledOverride === false,
      uris: [
        { label: 'Portal redirect URI', value: new URL('/oidc/callback', config.portalUrl).toString() },
        { label: 'Panel redirect URI', value: panelRedirectUri(web, ctx) },
        { label: 'Post-logout redirect URI (portal)', value: new URL('/login', config.portalUrl).toString() },
        { label: 'Post-logout redirect URI (panel)', value: `${origin}/login` },
      ],
      invalid,
      linked: me.oidcSubject ? { issuer: me.oidcIssuer, sub: me.oidcSubject } : null,
      report: o.report ?? null,
    });
  };

  // The provider decides who can become an admin session here: like secrets, this page needs a recent
  // password confirmation (the same window as the operator gate's sensitive paths).
  r.use('/settings/oidc', async (ctx, next) => {
    if (ctx.state.viaToken || web.now() - (ctx.state.session?.reauthAt ?? 0) <= REAUTH_WINDOW_MS) return next();
    web.seeOther(ctx, '/reauth?next=%2Fsettings%2Foidc');
  });

  r.get('/settings/oidc', (ctx) => show(ctx));

  r.post('/settings/oidc', async (ctx) => {
    const b = body(ctx);
    const current = await loadSettings(db);
    const values: Record<string, string> = {};
    const errors: FieldErrors = {};
    const parsed = new Map<SettingKey, unknown>();
    for (const { key } of TEXT) {
      const f = fieldOf(key);
      values[f] = str(b[f]);
      const p = parseSetting(key, values[f]!);
      if (!p.ok) errors[f] = p.error;
      else parsed.set(key, p.value);
    }
    for (const { key } of BOOLS) {
      const on = b[fieldOf(key)] === '1';
      values[fieldOf(key)] = String(on);
      parsed.set(key, on);
    }
    const issuer = parsed.get('oidc.issuer');
    if (typeof issuer === 'string' && issuer) {
      try {
        issuerUrl(issuer);
      } catch (e) {
        errors.issuer = e instanceof OidcUnavailable ? e.detail : String(e);
      }
    }
    const bad = compileAllowList({ emails: (parsed.get('oidc.allowed_emails') as string[] | undefined) ?? [], domains: [] }).invalid;
    if (bad.length) errors.allowed_emails = `Not e-mail addresses: ${bad.join(', ')}`;
    if (parsed.get('oidc.enabled') === true && (!parsed.get('oidc.issuer') || !parsed.get('oidc.client_id'))) {
      errors.enabled = 'Set the issuer URL and client ID before turning single sign-on on.';
    }
    const secretValue = str(b.client_secret);
    if (secretValue.length > 4096) errors.client_secret = 'At most 4096 characters.';
    if (Object.keys(errors).length) return show(ctx, { status: 400, values, errors, error: 'Nothing was saved: fix the fields below.' });

    const actor = web.actor(ctx);
    try {
      for (const [key, value] of parsed) {
        if (JSON.stringify(current[key as keyof SettingsMap]) === JSON.stringify(value)) continue;
        await changeSetting(db, actor, key, Array.isArray(value) ? value.join(',') : String(value));
      }
      if (secretValue) await storeSecret(db, vault, actor, 'oidc.client_secret', secretValue);
      else if (b.clear_secret === '1') await clearSecret(db, actor, 'oidc.client_secret');
    } catch (e) {
      if (e instanceof CommandError) return show(ctx, { status: e.status, values, error: e.message });
      throw e;
    }
    web.seeOther(ctx, '/settings/oidc?done=saved');
  });

  r.post('/settings/oidc/test', async (ctx) => {
    const s = await loadSettings(db);
    const issuer = str(body(ctx).issuer).trim() || s['oidc.issuer'];
    if (!issuer) return show(ctx, { status: 400, error: 'Enter an issuer URL to test.' });
    const report = await describeProvider(issuer);
    await show(ctx, { report, values: { issuer } });
  });

  r.post('/settings/oidc/link', async (ctx) => {
    const s = await loadSettings(db);
    if (!ssoEnabled(config, s)) return show(ctx, { status: 409, error: 'Turn single sign-on on (and save) before linking your account.' });
    try {
      const url = await beginPanelSso(web, ctx, s, { purpose: 'link', userId: ctx.state.user!.id, sessionId: ctx.state.session?.id ?? -1 });
      web.seeOther(ctx, url.toString());
    } catch (e) {
      if (e instanceof OidcUnavailable) return show(ctx, { status: 503, error: `Could not reach the identity provider: ${e.detail}` });
      throw e;
    }
  });

  r.post('/settings/oidc/unlink', async (ctx) => {
    await unlinkUser(db, web.actor(ctx), ctx.state.user!.id);
    web.seeOther(ctx, '/settings/oidc?done=unlinked');
  });

  return r;
}
