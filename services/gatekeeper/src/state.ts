/**
 * The gatekeeper's in-memory view of the database: hosts, users, settings and a bounded session cache.
 * Reloaded when the cross-process change counters move (polled every 250 ms), so panel and CLI edits
 * apply within 2 s and /verify never waits on a query except a cold session read.
 */
import { LRUCache } from 'lru-cache';
import type { Config } from '@argos/shared/config';
import { defaultCookieDomain } from '@argos/shared/config';
import type { Database } from '@argos/shared/db/sqlite';
import type { Logger } from '@argos/shared/log';
import { hostDefaults, listHosts, type Host } from '@argos/shared/repos/hosts';
import { listUsers } from '@argos/shared/repos/users';
import { getSessionByHash, touchSession, type Session } from '@argos/shared/repos/sessions';
import { listLiveTokens, type ApiToken } from '@argos/shared/repos/tokens';
import { loadSettings, type SettingsMap } from '@argos/shared/settings';
import { hashToken } from '@argos/shared/crypto';
import { normalizeHost } from '@argos/shared/hostname';
import type { Regulator } from '@argos/shared/regulation';
import type { BanView, Lookups, UserView } from './verify/lookups.ts';
import { describeLimit, hostKeyOf, limitFor, type RateBuckets } from './defences/rate.ts';
import type { CsDecision } from './defences/crowdsec.ts';
import type { Credentials } from './identity/credentials.ts';

const TOUCH_EVERY_MS = 60_000;

export interface StateDeps {
  db: Database;
  config: Config;
  log: Logger;
  regulator: Regulator;
  now?: () => number;
  /** Network defences (all optional: absent = no country, no buckets, no CrowdSec). */
  geo?: { country(ip: string): string | null } | null;
  rate?: RateBuckets | null;
  crowdsec?: { check(ip: string): CsDecision | null; peek(ip: string): CsDecision | null } | null;
}

export class GatekeeperState {
  hosts = new Map<string, Host>();
  users = new Map<number, UserView>();
  usernames = new Map<string, number>();
  /** Live API tokens by SHA-256 of the token. */
  tokens = new Map<string, ApiToken>();
  settings!: SettingsMap;
  cookieDomains: string[] = [];
  readonly portalHost: string;
  private readonly sessions = new LRUCache<string, { s: Session | null }>({ max: 50_000, ttl: 60_000 });
  private counters = { config: -1, sessions: -1 };
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  readonly now: () => number;

  constructor(private readonly deps: StateDeps) {
    this.now = deps.now ?? Date.now;
    this.portalHost = normalizeHost(deps.config.portalUrl.host) ?? deps.config.portalUrl.hostname;
  }

  /** Loads everything, then polls the change counters. */
  async start(pollMs = 250): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll(), pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One poll: reload config if its counter moved; drop cached sessions if revocations happened. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const rows = await this.deps.db.all<{ topic: string; counter: number }>('SELECT topic, counter FROM changes');
      const c = Object.fromEntries(rows.map((r) => [r.topic, r.counter])) as Record<string, number>;
      if (c.config !== this.counters.config) {
        await this.reload();
        this.counters.config = c.config ?? 0;
      }
      if (c.sessions !== this.counters.sessions) {
        this.sessions.clear();
        this.counters.sessions = c.sessions ?? 0;
      }
    } catch (e) {
      this.deps.log.error({ err: e }, 'state poll failed; keeping the last known state');
    } finally {
      this.polling = false;
    }
  }

  private async reload(): Promise<void> {
    const db = this.deps.db;
    const [hosts, users, settings, tokens] = await Promise.all([listHosts(db), listUsers(db), loadSettings(db), listLiveTokens(db)]);
    const hostMap = new Map<string, Host>();
    for (const h of hosts) hostMap.set(h.domain, h);
    // Argos's own portal (and panel, behind Caddy) are hosts too: bans, geo and rate apply, no login.
    const own = (domain: string): Host => ({ ...hostDefaults(domain, []), id: 0, policy: 'bypass', rules: [], createdAt: 0, updatedAt: 0 });
    hostMap.set(this.portalHost, own(this.portalHost));
    if (this.deps.config.mode === 'behind_caddy' && this.deps.config.panelDomain) {
      const panel = normalizeHost(this.deps.config.panelDomain);
      if (panel) hostMap.set(panel, own(panel));
    }
    const userMap = new Map<number, UserView>();
    const names = new Map<string, number>();
    for (const u of users) {
      userMap.set(u.id, {
        id: u.id,
        username: u.username,
        email: u.email,
        displayName: u.displayName,
        groups: u.groups,
        disabled: u.disabled,
        hasTotp: u.totpEnabledAt !== null,
      });
      names.set(u.username, u.id);
    }
    this.hosts = hostMap;
    this.users = userMap;
    this.usernames = names;
    this.settings = settings;
    this.tokens = new Map(tokens.map((t) => [t.tokenHash, t]));
    this.cookieDomains = settings['cookie.domains'].length ? settings['cookie.domains'] : [defaultCookieDomain(this.deps.config.portalUrl)];
  }

  /** Remembers a session this process just created, so the first request after login needs no read. */
  rememberSession(token: string, s: Session): void {
    this.sessions.set(hashToken(token), { s });
  }

  forgetSession(token: string): void {
    this.sessions.delete(hashToken(token));
  }

  /** A session by token: synchronous from the cache (the /verify hot path), a Promise on a miss (one read). */
  session(token: string, touch: boolean): Session | null | Promise<Session | null> {
    const key = hashToken(token);
    const entry = this.sessions.get(key);
    if (entry) return this.touched(entry.s, touch);
    return getSessionByHash(this.deps.db, key).then((s) => {
      this.sessions.set(key, { s });
      return this.touched(s, touch);
    });
  }

  /** Records activity on a live session at most once a minute (the idle timeout counts from it). */
  private touched(s: Session | null, touch: boolean): Session | null {
    const now = this.now();
    if (touch && s && s.revokedAt === null && now - s.lastSeenAt > TOUCH_EVERY_MS && now - s.lastSeenAt < s.idleTimeoutS * 1000) {
      s.lastSeenAt = now;
      this.deps.db.write((tx) => touchSession(tx, s.id, now)).catch((err) => this.deps.log.warn({ err }, 'session touch failed'));
    }
    return s;
  }

  get sessionCacheSize(): number {
    return this.sessions.size;
  }

  /** Credential lookups (tokens, Basic, handoff); set by main once the identity module is built. */
  credentials: Credentials | null = null;

  /** The checks' view of the world. `dryRun` lookups consume nothing and write nothing. */
  lookups(dryRun = false): Lookups {
    const regulator = this.deps.regulator;
    const cred = this.credentials;
    return {
      token: (v) => cred?.token(v, !dryRun) ?? null,
      basic: (u, p, ip) => (cred && !dryRun ? cred.basic(u, p, ip) : Promise.resolve(null)),
      failure: (ip, u) => (dryRun ? undefined : cred?.failure(ip, u)),
      handoff: (t, h, ip, ua) => (cred && !dryRun ? cred.redeemHandoff(t, h, ip, ua) : Promise.resolve(null)),
      selfEnroll: () => this.settings['totp.self_enroll'],
      ssoEnabled: () => this.deps.config.oidcEnabledOverride !== false && this.settings['oidc.enabled'],
      dryRun,
      now: this.now,
      host: (d) => this.hosts.get(d),
      user: (id) => this.users.get(id),
      session: (token) => this.session(token, !dryRun),
      ban: (ip): BanView | null => {
        const cs = dryRun ? this.deps.crowdsec?.peek(ip) : this.deps.crowdsec?.check(ip);
        if (cs) return { source: 'crowdsec', reason: `${cs.type} ${cs.value} (${cs.scenario || cs.origin})`, untilMs: cs.untilMs };
        const s = regulator.blockedFor(ip);
        return s > 0 ? { source: 'regulation', reason: 'failed logins', untilMs: this.now() + s * 1000 } : null;
      },
      country: (ip) => this.deps.geo?.country(ip) ?? null,
      geoDefault: () => ({
        mode: this.settings['geo.default_mode'] as 'off' | 'allow' | 'deny',
        countries: this.settings['geo.default_countries'],
        lan: this.settings['geo.default_lan'] as 'allow' | 'deny',
        unknown: this.settings['geo.default_unknown'] as 'allow' | 'deny',
      }),
      rate: (host, ip) => {
        const l = limitFor(host, this.settings);
        if (!l || !this.deps.rate) return { ok: true };
        if (!dryRun) return this.deps.rate.take(hostKeyOf(host), ip, l);
        return { ...this.deps.rate.peek(hostKeyOf(host), ip, l), limit: describeLimit(l) };
      },
    };
  }
}
