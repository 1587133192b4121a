/**
 * Single sign-on with an external OpenID Connect provider (openid-client 6): discovery, the authorization
 * code flow with PKCE S256, `state` and `nonce`, the `iss` response parameter (checked when the provider
 * advertises it), the ID token validated against the provider's JWKS (signature, issuer, audience, expiry,
 * nonce), and userinfo for the claims the ID token lacks.
 *
 * Each sign-in attempt is a pending record held here, server-side: keyed by its `state` (192 random bits),
 * bound to the browser that started it (the caller passes a value derived from a cookie of that browser),
 * single use (taken before anything else happens), expiring after ten minutes, and capped in number with
 * expired records swept, so memory stays bounded whatever is sent. Two attempts never share a record, so two
 * tabs or two people signing in at once cannot swap identities.
 *
 * Failures are of two kinds: `OidcRefused` (the response is not acceptable: audit the reason, show the visitor
 * one vague message) and `OidcUnavailable` (the provider cannot be reached or is misconfigured: say so plainly,
 * local sign-in still works).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import * as client from 'openid-client';
import type { Queryable } from '../db/sqlite.ts';
import type { Vault } from '../crypto.ts';
import type { SettingsMap } from '../settings.ts';
import { safeEqual } from '../crypto.ts';
import { readSecret } from '../secrets.ts';
import { EphemeralStore } from '../ephemeral.ts';

export { isSsoMethod, ssoConfigured, ssoEnabled } from './mode.ts';

/** The provider cannot be used right now (unreachable, timing out, misconfigured). */
export class OidcUnavailable extends Error {
  constructor(readonly detail: string) {
    super(`single sign-on unavailable: ${detail}`);
    this.name = 'OidcUnavailable';
  }
}

/** The sign-in was refused; `reason` is a stable code for the audit log, `detail` says more. */
export class OidcRefused extends Error {
  constructor(
    readonly reason: string,
    readonly detail: string,
  ) {
    super(`single sign-on refused (${reason}): ${detail}`);
    this.name = 'OidcRefused';
  }
}

export type OidcSettings = Pick<SettingsMap, 'oidc.enabled' | 'oidc.issuer' | 'oidc.client_id' | 'oidc.scopes'> &
  Partial<Pick<SettingsMap, 'oidc.groups_claim'>>;

const LOOPBACK = (host: string) => host === 'localhost' || host === '[::1]' || (isIP(host) === 4 && host.startsWith('127.'));

/** The issuer as a URL: https, or http only for a provider on loopback (tests, a local IdP). */
export function issuerUrl(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new OidcUnavailable(`oidc.issuer "${raw}" is not a URL`);
  }
  if (u.username || u.password || u.search || u.hash) throw new OidcUnavailable('oidc.issuer must not contain credentials, a query or a fragment');
  if (u.protocol === 'https:') return u;
  if (u.protocol === 'http:' && LOOPBACK(u.hostname)) return u;
  throw new OidcUnavailable(`oidc.issuer must be https (plain http is accepted only for a provider on loopback): ${raw}`);
}

/** The scopes to request: the setting's words, deduplicated, always with openid. */
export function scopesOf(raw: string): string {
  const words = raw.split(/[\s,]+/).filter((w) => /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(w));
  return [...new Set(['openid', ...words])].join(' ');
}

const ASYMMETRIC = ['RS256', 'ES256', 'PS256', 'EdDSA', 'Ed25519', 'ES384', 'RS384', 'PS384', 'ES512', 'RS512', 'PS512'];

function isNetworkError(e: unknown): boolean {
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    if (c instanceof TypeError && /fetch failed|network/i.test(c.message)) return true;
    const code = (c as { code?: unknown }).code;
    if (
      typeof code === 'string' &&
      /^(ECONN|ENOTFOUND|EAI_|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|UND_ERR|OAUTH_TIMEOUT|OAUTH_ABORT|OAUTH_RESPONSE_IS_NOT_CONFORM)/.test(code)
    )
      return true;
  }
  return false;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Turns an openid-client error during the code exchange into a refusal (or unavailability) with a reason. */
export function classifyError(e: unknown): OidcRefused | OidcUnavailable {
  if (e instanceof OidcRefused || e instanceof OidcUnavailable) return e;
  if (e instanceof client.AuthorizationResponseError)
    return new OidcRefused('idp_error', `the provider answered ${e.error}${e.error_description ? `: ${e.error_description}` : ''}`);
  if (e instanceof client.ResponseBodyError)
    return new OidcRefused('token_error', `the token endpoint answered ${e.error}${e.error_description ? `: ${e.error_description}` : ''}`);
  if (isNetworkError(e)) return new OidcUnavailable(`the provider did not answer: ${message(e)}`);
  const inner = (e as { cause?: { message?: string; cause?: { claim?: string } } }).cause;
  const detail = inner?.message ?? message(e);
  const code = (e as { code?: string }).code;
  const claim = inner?.cause?.claim;
  switch (code) {
    case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED':
      if (claim === 'nonce') return new OidcRefused('nonce_mismatch', detail);
      if (claim === 'iss') return new OidcRefused('issuer_mismatch', detail);
      if (claim === 'aud' || claim === 'azp') return new OidcRefused('audience_mismatch', detail);
      return new OidcRefused('id_token_invalid', detail);
    case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
      return new OidcRefused(claim === 'exp' ? 'id_token_expired' : 'id_token_time', detail);
    case 'OAUTH_INVALID_RESPONSE':
      if (/"iss"/.test(detail)) return new OidcRefused('issuer_mismatch', detail);
      if (/"state"/.test(detail)) return new OidcRefused('state_mismatch', detail);
      if (/signature|"alg"/i.test(detail)) return new OidcRefused('id_token_signature', detail);
      return new OidcRefused('invalid_response', detail);
    case 'OAUTH_KEY_SELECTION_FAILED':
    case 'OAUTH_UNSUPPORTED_OPERATION':
      return new OidcRefused('id_token_signature', detail);
    default:
      return new OidcRefused('invalid_response', detail);
  }
}

export interface FlowDeps {
  db: Queryable;
  vault: Vault;
  /** Seconds before a provider request is abandoned. */
  timeoutS?: number;
  /** Pending sign-ins kept at most (oldest evicted first). */
  maxPending?: number;
  pendingTtlMs?: number;
}

interface Pending<T> {
  nonce: string;
  verifier: string;
  redirectUri: string;
  browser: string;
  issuer: string;
  config: client.Configuration;
  data: T;
}

export interface FinishedSignIn<T> {
  data: T;
  /** The issuer that signed the ID token (equal to the configured one). */
  issuer: string;
  /** ID token claims, completed by userinfo for what the ID token lacks (the ID token wins a conflict). */
  claims: Record<string, unknown>;
  idToken: string | null;
}

/** One SSO client (portal or panel): discovery, pending sign-ins, the code exchange. `T` is what the caller keeps per attempt. */
export class OidcFlow<T> {
  private readonly pending: EphemeralStore<Pending<T>>;
  private readonly inflight = new Map<string, Promise<client.Configuration>>();
  private readonly jwks = new Map<string, client.ExportedJWKSCache>();
  private readonly timeoutS: number;

  constructor(private readonly deps: FlowDeps) {
    this.pending = new EphemeralStore<Pending<T>>({ max: deps.maxPending ?? 10_000, ttlMs: deps.pendingTtlMs ?? 10 * 60_000 });
    this.timeoutS = deps.timeoutS ?? 8;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Discovery for the configured provider (concurrent callers share one request). Always fresh: a sign-in
   * that starts is a sign-in the provider can answer now, and key rotation is picked up at once.
   */
  async configuration(settings: OidcSettings): Promise<client.Configuration> {
    const issuer = settings['oidc.issuer'];
    const clientId = settings['oidc.client_id'];
    if (!issuer || !clientId) throw new OidcUnavailable('single sign-on is not configured (oidc.issuer and oidc.client_id are needed)');
    const url = issuerUrl(issuer);
    const secret = await readSecret(this.deps.db, this.deps.vault, 'oidc.client_secret');
    const key = JSON.stringify([url.href, clientId, secret ? createHash('sha256').update(secret).digest('hex') : null]);
    let p = this.inflight.get(key);
    if (!p) {
      p = this.discover(url, clientId, secret).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async discover(url: URL, clientId: string, secret: string | null): Promise<client.Configuration> {
    const execute = [client.enableNonRepudiationChecks, ...(url.protocol === 'http:' ? [client.allowInsecureRequests] : [])];
    const auth = secret ? client.ClientSecretBasic(secret) : client.None();
    let config: client.Configuration;
    try {
      config = await client.discovery(url, clientId, secret ?? undefined, auth, { execute, timeout: this.timeoutS });
    } catch (e) {
      throw new OidcUnavailable(`discovery at ${url.href} failed: ${message(e)}${(e as { code?: string }).code ? ` (${(e as { code?: string }).code})` : ''}`);
    }
    const meta = config.serverMetadata();
    const algs = meta.id_token_signing_alg_values_supported;
    if (algs && !algs.includes('RS256')) {
      const alg = ASYMMETRIC.find((a) => algs.includes(a));
      if (!alg)
        throw new OidcUnavailable(
          `the provider signs ID tokens only with ${algs.join(', ')}; Argos needs an asymmetric algorithm (RS256, ES256, PS256, EdDSA)`,
        );
      config = new client.Configuration(meta, clientId, { ...(secret ? { client_secret: secret } : {}), id_token_signed_response_alg: alg }, auth);
      for (const x of execute) x(config);
    }
    const methods = meta.code_challenge_methods_supported;
    if (methods && !methods.includes('S256')) throw new OidcUnavailable('the provider does not support PKCE with S256');
    if (!meta.jwks_uri) throw new OidcUnavailable('the provider advertises no jwks_uri: ID token signatures cannot be checked');
    const cached = this.jwks.get(meta.issuer);
    if (cached) client.setJwksCache(config, cached);
    return config;
  }

  /** Starts a sign-in: returns the provider's authorization URL to send the browser to. */
  async begin(settings: OidcSettings, o: { redirectUri: string; browser: string; data: T }): Promise<URL> {
    const config = await this.configuration(settings);
    const verifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const challenge = await client.calculatePKCECodeChallenge(verifier);
    const state = this.pending.put({
      nonce,
      verifier,
      redirectUri: o.redirectUri,
      browser: o.browser,
      issuer: config.serverMetadata().issuer,
      config,
      data: o.data,
    });
    return client.buildAuthorizationUrl(config, {
      redirect_uri: o.redirectUri,
      scope: scopesOf(settings['oidc.scopes']),
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      nonce,
    });
  }

  /**
   * Completes a sign-in from the callback URL (built from Argos's own public origin, never the request's Host).
   * Consumes the pending record first, then checks the browser, then lets openid-client check iss, state,
   * the code exchange with the PKCE verifier, and the ID token (JWKS signature, iss, aud, exp, nonce).
   */
  async finish(callback: URL, browser: string | null, settings: OidcSettings): Promise<FinishedSignIn<T>> {
    const state = callback.searchParams.get('state');
    const p = this.pending.take(state);
    if (!p)
      throw new OidcRefused(
        'unknown_state',
        state ? 'no pending sign-in has this state (expired, already used, or never issued)' : 'the callback has no state',
      );
    if (!browser || !safeEqual(p.browser, browser))
      throw new OidcRefused('browser_mismatch', 'the callback came from another browser than the one that started the sign-in');
    if (callback.origin + callback.pathname !== new URL(p.redirectUri).origin + new URL(p.redirectUri).pathname) {
      throw new OidcRefused('redirect_mismatch', 'the callback URL differs from the redirect URI of this sign-in');
    }
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(p.config, callback, {
        pkceCodeVerifier: p.verifier,
        expectedState: state!,
        expectedNonce: p.nonce,
        idTokenExpected: true,
      });
    } catch (e) {
      throw classifyError(e);
    }
    const jwks = client.getJwksCache(p.config);
    if (jwks) this.jwks.set(p.issuer, jwks);
    const idClaims = tokens.claims();
    if (!idClaims || typeof idClaims.sub !== 'string' || !idClaims.sub) throw new OidcRefused('id_token_invalid', 'no ID token subject');
    if (idClaims.iss !== p.issuer) throw new OidcRefused('issuer_mismatch', `ID token issuer ${String(idClaims.iss)} is not ${p.issuer}`);
    let claims: Record<string, unknown> = { ...idClaims };
    const groupsClaim = settings['oidc.groups_claim'] ?? 'groups';
    const lacking = claims.email === undefined || claims.name === undefined || (groupsClaim && claims[groupsClaim] === undefined);
    if (lacking && tokens.access_token && p.config.serverMetadata().userinfo_endpoint) {
      try {
        const info = await client.fetchUserInfo(p.config, tokens.access_token, idClaims.sub);
        claims = { ...info, ...claims };
      } catch (e) {
        const c = classifyError(e);
        if (c instanceof OidcUnavailable) throw c;
        throw new OidcRefused('userinfo_invalid', c.detail);
      }
    }
    return { data: p.data, issuer: p.issuer, claims, idToken: tokens.id_token ?? null };
  }

  /** The provider's end-session URL (RP-initiated logout), or null when it has none or cannot be reached. */
  async endSessionUrl(settings: OidcSettings, o: { idTokenHint?: string | null; postLogoutRedirectUri: string }): Promise<URL | null> {
    let config: client.Configuration;
    try {
      config = await this.configuration(settings);
    } catch {
      return null;
    }
    if (!config.serverMetadata().end_session_endpoint) return null;
    return client.buildEndSessionUrl(config, {
      client_id: settings['oidc.client_id'],
      post_logout_redirect_uri: o.postLogoutRedirectUri,
      ...(o.idTokenHint ? { id_token_hint: o.idTokenHint } : {}),
    });
  }
}

export interface ProviderReport {
  ok: boolean;
  error?: string;
  warnings: string[];
  metadata?: {
    issuer: string;
    authorization_endpoint?: string;
    token_endpoint?: string;
    userinfo_endpoint?: string;
    jwks_uri?: string;
    end_session_endpoint?: string;
    scopes_supported?: string[];
    claims_supported?: string[];
    code_challenge_methods_supported?: string[];
    id_token_signing_alg_values_supported?: string[];
    token_endpoint_auth_methods_supported?: string[];
    authorization_response_iss_parameter_supported?: boolean;
  };
}

/** "Test connection": runs discovery for an issuer and reports what the provider advertises, with warnings. */
export async function describeProvider(issuer: string, timeoutS = 8): Promise<ProviderReport> {
  let url: URL;
  try {
    url = issuerUrl(issuer);
  } catch (e) {
    return { ok: false, error: e instanceof OidcUnavailable ? e.detail : message(e), warnings: [] };
  }
  let m: client.ServerMetadata;
  try {
    const execute = url.protocol === 'http:' ? [client.allowInsecureRequests] : [];
    m = (await client.discovery(url, 'argos-connection-test', undefined, client.None(), { execute, timeout: timeoutS })).serverMetadata();
  } catch (e) {
    const code = (e as { code?: string }).code;
    return { ok: false, error: `${message(e)}${code ? ` (${code})` : ''}`, warnings: [] };
  }
  const warnings: string[] = [];
  if (m.code_challenge_methods_supported && !m.code_challenge_methods_supported.includes('S256'))
    warnings.push('PKCE S256 is not advertised: sign-in will not work.');
  if (!m.code_challenge_methods_supported) warnings.push('The provider does not advertise PKCE methods; Argos sends S256 anyway.');
  if (!m.jwks_uri) warnings.push('No jwks_uri: ID token signatures cannot be checked, sign-in will not work.');
  if (!m.userinfo_endpoint) warnings.push('No userinfo endpoint: claims must all be in the ID token.');
  if (!m.end_session_endpoint) warnings.push('No end_session_endpoint: RP-initiated logout (oidc.rp_logout) is not possible.');
  if (!m.authorization_response_iss_parameter_supported)
    warnings.push('The provider does not send the iss response parameter (mix-up protection then relies on the ID token issuer).');
  if (url.protocol === 'http:') warnings.push('Plain http issuer (accepted on loopback only): use https for a real provider.');
  return {
    ok: true,
    warnings,
    metadata: {
      issuer: m.issuer,
      authorization_endpoint: m.authorization_endpoint,
      token_endpoint: m.token_endpoint,
      userinfo_endpoint: m.userinfo_endpoint,
      jwks_uri: m.jwks_uri,
      end_session_endpoint: m.end_session_endpoint,
      scopes_supported: m.scopes_supported,
      claims_supported: m.claims_supported,
      code_challenge_methods_supported: m.code_challenge_methods_supported,
      id_token_signing_alg_values_supported: m.id_token_signing_alg_values_supported,
      token_endpoint_auth_methods_supported: m.token_endpoint_auth_methods_supported,
      authorization_response_iss_parameter_supported: m.authorization_response_iss_parameter_supported,
    },
  };
}
