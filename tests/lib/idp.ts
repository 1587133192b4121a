/**
 * A real OpenID provider for the tests: oidc-provider 9 on a random 127.0.0.1 port, one static confidential
 * client, devInteractions (any login name, any password), PKCE required, consent granted automatically (a
 * first-party client), and an account factory so each test decides the claims of a login name.
 *
 * The provider signs with a key this helper generates, so tests can also act as a compromised or broken
 * network path in front of the token endpoint: `tokenHook` sees every ID token the provider issues and may
 * replace it (tampered without re-signing, or re-signed with the IdP's own key but a wrong nonce, issuer,
 * audience or expiry). Accounts whose factory result carries `amr`/`acr` get them in their ID token the same
 * way, signed by the IdP: that is how an IdP that recorded an MFA login asserts it.
 */
import http from 'node:http';
import { createSign, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import type Koa from 'koa';
import Provider from 'oidc-provider';
import { freePort } from './argos.ts';

export interface IdpClaims {
  email?: string;
  email_verified?: boolean | string;
  name?: string;
  preferred_username?: string;
  groups?: string[];
  /** Put into the ID token (signed by the IdP), like an IdP that records how the user signed in. */
  amr?: string[];
  acr?: string;
}

export type IdTokenPayload = Record<string, unknown> & { sub: string; iss: string; aud: string | string[]; exp: number; iat: number; nonce?: string };

/** What a token hook returns: a new payload to sign with the IdP key, a raw token string, or null to keep the original. */
export type TokenHookResult = { payload: IdTokenPayload } | { raw: string } | null;

export interface Idp {
  issuer: string;
  port: number;
  clientId: string;
  clientSecret: string;
  /** Sees (and may replace) every ID token leaving the token endpoint; null = untouched. */
  tokenHook: ((payload: IdTokenPayload, original: string) => TokenHookResult) | null;
  /** Signs a payload with the IdP's signing key (RS256). */
  sign(payload: Record<string, unknown>): string;
  /** Token endpoint responses seen (for assertions). */
  tokenRequests: number;
  stop(): Promise<void>;
}

export interface IdpOptions {
  redirectUris: string[];
  postLogoutRedirectUris?: string[];
  /** Claims for a login name (the `sub` is the login name). Default: `<login>@example.test`, verified. */
  account?: (login: string) => IdpClaims;
  clientId?: string;
  clientSecret?: string;
  port?: number;
}

interface GrantCtx {
  oidc: {
    session: { accountId: string; grantIdFor(clientId: string): string | undefined };
    client: { clientId: string };
    provider: Provider;
    result?: { consent?: { grantId?: string } };
  };
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

export function decodeJwt(jwt: string): { header: Record<string, unknown>; payload: IdTokenPayload } {
  const [h, p] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h!, 'base64url').toString('utf8')), payload: JSON.parse(Buffer.from(p!, 'base64url').toString('utf8')) };
}

export const defaultAccount = (login: string): IdpClaims => ({
  email: `${login}@example.test`,
  email_verified: true,
  name: login.charAt(0).toUpperCase() + login.slice(1),
  preferred_username: login,
  groups: [],
});

export async function startIdp(o: IdpOptions): Promise<Idp> {
  const port = o.port ?? (await freePort());
  const issuer = `http://127.0.0.1:${port}`;
  const clientId = o.clientId ?? 'argos';
  const clientSecret = o.clientSecret ?? 'argos-test-client-secret-0123456789';
  const account = o.account ?? defaultAccount;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  const jwk = { ...(privateKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg: 'RS256', use: 'sig' };

  const sign = (key: KeyObject, payload: Record<string, unknown>) => {
    const input = `${b64({ alg: 'RS256', typ: 'JWT', kid })}.${b64(payload)}`;
    return `${input}.${createSign('RSA-SHA256').update(input).sign(key, 'base64url')}`;
  };

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: o.redirectUris,
        post_logout_redirect_uris: o.postLogoutRedirectUris ?? [],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomUUID()] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], groups: ['groups'] },
    scopes: ['openid', 'email', 'profile', 'groups'],
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    pkce: { required: () => true },
    // A first-party client: consent is granted without a prompt (one grant per session, reused, so two
    // pending authorizations in one browser both stay valid).
    async loadExistingGrant(ctx: GrantCtx) {
      const existing = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (existing) {
        const found = await ctx.oidc.provider.Grant.find(existing);
        if (found) return found;
      }
      const grant = new ctx.oidc.provider.Grant({ accountId: ctx.oidc.session.accountId, clientId: ctx.oidc.client.clientId });
      grant.addOIDCScope('openid email profile groups');
      grant.addOIDCClaims(['email', 'email_verified', 'name', 'preferred_username', 'groups']);
      await grant.save();
      return grant;
    },
    async findAccount(_ctx: unknown, id: string) {
      return {
        accountId: id,
        claims: () => {
          const { amr: _amr, acr: _acr, ...c } = account(id);
          return { sub: id, ...c };
        },
      };
    },
  });

  const idp: Idp = {
    issuer,
    port,
    clientId,
    clientSecret,
    tokenHook: null,
    tokenRequests: 0,
    sign: (payload) => sign(privateKey, payload),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  provider.use(async (ctx: Koa.Context, next: Koa.Next) => {
    await next();
    if (ctx.path !== '/token' || ctx.method !== 'POST' || ctx.status !== 200) return;
    idp.tokenRequests++;
    const body = ctx.body as { id_token?: string } | undefined;
    if (!body?.id_token) return;
    let token = body.id_token;
    let { payload } = decodeJwt(token);
    const c = account(payload.sub);
    if (c.amr || c.acr) {
      payload = { ...payload, ...(c.amr ? { amr: c.amr } : {}), ...(c.acr ? { acr: c.acr } : {}) };
      token = sign(privateKey, payload);
    }
    const r = idp.tokenHook?.(payload, token) ?? null;
    if (r && 'raw' in r) token = r.raw;
    else if (r) token = sign(privateKey, r.payload);
    ctx.body = { ...body, id_token: token };
  });

  const handler = provider.callback();
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return idp;
}

/** The HTML form the devInteractions login page shows: its action URL and hidden fields. */
export function loginForm(html: string, base: string): { action: string } {
  const m = /<form[^>]*action="([^"]+)"[^>]*method="post"/i.exec(html);
  if (!m) throw new Error(`no login form in IdP page: ${html.slice(0, 300)}`);
  return { action: new URL(m[1]!.replace(/&amp;/g, '&'), base).toString() };
}
