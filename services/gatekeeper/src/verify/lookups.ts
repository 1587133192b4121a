/**
 * What the checks may ask of the world, injected so every check is a pure function of its input.
 * The live gatekeeper implements it over its in-memory state; `argos check` over a read-only copy.
 */
import type { Host } from '@argos/shared/repos/hosts';
import type { Session } from '@argos/shared/repos/sessions';

export interface UserView {
  id: number;
  username: string;
  email: string | null;
  displayName: string | null;
  groups: string[];
  disabled: boolean;
  hasTotp: boolean;
}

export interface BanView {
  source: 'crowdsec' | 'regulation';
  reason: string;
  untilMs: number | null;
}

export interface TokenView {
  id: number;
  userId: number;
  hosts: string[];
  expiresAt: number | null;
  factors: number;
  origin: 'operator' | 'portal' | 'sso';
  adminScope: boolean;
}

/** A country rule: a host's own, or the global default that hosts with geo_mode 'inherit' use. */
export interface GeoRule {
  mode: 'off' | 'allow' | 'deny';
  countries: readonly string[];
  lan: 'allow' | 'deny';
  unknown: 'allow' | 'deny';
}

/** A rate-bucket answer; `limit` describes the limit that applied (for the trace), when any. */
export type RateAnswer = { ok: true; limit?: string } | { ok: false; retryAfterS: number; limit?: string };

export interface Lookups {
  now(): number;
  /** A published host (or Argos's own portal/panel host) by normalised domain. */
  host(domain: string): Host | undefined;
  user(id: number): UserView | undefined;
  /** A session by cookie token: synchronous from the cache, a Promise when it has to read the database. */
  session(token: string): Session | null | Promise<Session | null>;
  /** An active ban on the client, if any. */
  ban(ip: string): BanView | null;
  /** The client's country code, 'LAN', or null when unknown. */
  country(ip: string): string | null;
  /** Takes a token from the client's bucket for the host (null: unknown host, global default); `dryRun` only looks. */
  rate(host: Host | null, ip: string): RateAnswer;
  /** The global country rule for hosts that inherit (absent: no global rule). */
  geoDefault?(): GeoRule;
  /** A live API token by its full value (in-memory, by hash), or null. */
  token(value: string): TokenView | null;
  /** Checks Basic credentials (bounded hashing, cached on success, regulated); the user id or null. */
  basic(username: string, password: string, ip: string): Promise<number | null>;
  /** Counts a failed credential (bad token, bad Basic) against the client and username. */
  failure(ip: string, username?: string): void;
  /** Redeems a cookie-domain handoff token for this host and client; the redirect and cookie, or null. */
  handoff(token: string, host: string, ip: string, userAgent: string | null): Promise<{ location: string; setCookie: string } | null>;
  /** Whether visitors may enroll TOTP themselves when a two_factor host asks for it. */
  selfEnroll(): boolean;
  /** Whether single sign-on is on (setting and ARGOS_OIDC_ENABLED); when false, sessions created through SSO stop passing. Absent = on. */
  ssoEnabled?(): boolean;
  /** True for explain-only runs (`argos check`, Test access): nothing is consumed or written. */
  readonly dryRun: boolean;
}
