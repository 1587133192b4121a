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

export interface Lookups {
  now(): number;
  /** A published host (or Argos's own portal/panel host) by normalised domain. */
  host(domain: string): Host | undefined;
  user(id: number): UserView | undefined;
  /** A live session by cookie token (server-side lookup; may read the database on a cache miss). */
  session(token: string): Promise<Session | null>;
  /** An active ban on the client, if any. */
  ban(ip: string): BanView | null;
  /** The client's country code, 'LAN', or null when unknown. */
  country(ip: string): string | null;
  /** Takes a token from the client's bucket for the host (null: unknown host, global default); `dryRun` only looks. */
  rate(host: Host | null, ip: string): { ok: true } | { ok: false; retryAfterS: number };
  /** True for explain-only runs (`argos check`, Test access): nothing is consumed or written. */
  readonly dryRun: boolean;
}
