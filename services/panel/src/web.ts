/**
 * What every panel route shares: views compiled once, the page renderer (layout locals, flash message),
 * cookies, the client address and the audit actor, the Caddy calls that never throw, and the one
 * error-to-response function (JSON under /api, an HTML page elsewhere).
 */
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type Koa from 'koa';
import pug from 'pug';
import type { Actor } from '@argos/shared/audit';
import { deriveKey, hmac, safeEqual } from '@argos/shared/crypto';
import { Csrf, readCookie, requestIp, serializeCookie } from '@argos/shared/http';
import { normalizeIp } from '@argos/shared/net';
import { CommandError, type FieldErrors } from '@argos/shared/commands/hosts';
import type { Session } from '@argos/shared/repos/sessions';
import type { User } from '@argos/shared/repos/users';
import type { CaddyApplyResult, CaddyStatus, PanelDeps } from './app.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VIEW_NAMES = [
  'login',
  'login-2fa',
  'account-password',
  'account-totp',
  'reauth',
  'welcome',
  'access',
  'decisions',
  'user-security',
  'dashboard',
  'hosts',
  'host-form',
  'users',
  'user-form',
  'audit',
  'settings',
  'system',
  'caddy-preview',
  'backups',
  'secrets',
  'message',
  'notifications',
  'traffic',
] as const;
export type ViewName = (typeof VIEW_NAMES)[number];
const VIEWS = Object.fromEntries(VIEW_NAMES.map((n) => [n, pug.compileFile(path.join(HERE, 'views', `${n}.pug`))])) as Record<ViewName, pug.compileTemplate>;
export const CSS = fs.readFileSync(path.join(HERE, 'static', 'panel.css'));

export const SESSION_COOKIE = 'argos_panel';
export const BROWSER_CSRF_COOKIE = 'argos_panel_csrf';
const FLASH_COOKIE = 'argos_panel_flash';

/** Per-request state: set by the session middleware for a signed-in operator. */
export interface PanelState {
  session?: Session;
  user?: User;
  /** The CSRF token to embed in forms (session-bound once signed in). */
  csrfToken?: string;
  /** Authenticated by an admin API token (Authorization: Bearer): no cookie, so no CSRF exposure. */
  viaToken?: boolean;
}

export type Ctx = Koa.ParameterizedContext<PanelState>;

export type FlashKind = 'ok' | 'warn' | 'error';
export interface Flash {
  kind: FlashKind;
  text: string;
}

export const isApi = (ctx: Ctx) => ctx.path === '/api' || ctx.path.startsWith('/api/');

/** The request body as a plain object (forms and JSON), or {} for anything else. */
export function body(ctx: Ctx): Record<string, unknown> {
  const b = ctx.request.body;
  return b && typeof b === 'object' && !Array.isArray(b) ? (b as Record<string, unknown>) : {};
}

/** A form field as text ('' when missing or not a single string). */
export const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** A local path to return to after sign-in: one leading slash, no scheme or host, no backslash or control characters. */
export function safeNext(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length > 1000) return '/';
  if (!/^\/(?![/\\])[^\\\s\u0000-\u001f\u007f]*$/.test(raw)) return '/';
  if (raw === '/login' || raw.startsWith('/login?')) return '/';
  return raw;
}

/** The field errors and status of a command's refusal, or null for anything that is not a CommandError. */
export function commandFailure(e: unknown): { status: number; message: string; errors: FieldErrors } | null {
  return e instanceof CommandError ? { status: e.status, message: e.message, errors: e.errors } : null;
}

const pad = (n: number) => String(n).padStart(2, '0');
/** Formatting helpers available to every view. */
export const fmt = {
  time(ms: number | null | undefined): string {
    if (!ms) return '—';
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  },
  list(v: readonly string[] | null | undefined): string {
    return v && v.length ? v.join(', ') : '—';
  },
};

export class Web {
  readonly csrf: Csrf;
  readonly secureCookies: boolean;
  private readonly flashKey: Buffer;

  constructor(readonly deps: PanelDeps) {
    this.csrf = new Csrf(deriveKey(deps.config.masterKey, 'panel-csrf'));
    this.flashKey = deriveKey(deps.config.masterKey, 'panel-flash');
    this.secureCookies = deps.config.mode === 'behind_caddy';
  }

  now(): number {
    return this.deps.now ? this.deps.now() : Date.now();
  }

  /** The client address: X-Forwarded-For from trusted proxies behind Caddy, the socket peer on the LAN. */
  clientIp(ctx: Ctx): string {
    if (this.deps.config.mode === 'behind_caddy') return requestIp(ctx.req, this.deps.config.trustedProxies);
    return normalizeIp(ctx.req.socket.remoteAddress ?? '') ?? '0.0.0.0';
  }

  client(ctx: Ctx): { ip: string; userAgent: string | null } {
    return { ip: this.clientIp(ctx), userAgent: ctx.get('user-agent').slice(0, 300) || null };
  }

  /** The audit actor of a signed-in operator's request. */
  actor(ctx: Ctx): Actor {
    const u = ctx.state.user;
    if (!u) throw new Error('actor() called without a signed-in operator');
    return { name: `admin:${u.username}`, ...this.client(ctx) };
  }

  /** Sets a host-only, HttpOnly, SameSite=Strict cookie (Secure behind Caddy). */
  setCookie(ctx: Ctx, name: string, value: string, maxAgeS: number | null = null): void {
    ctx.append('Set-Cookie', serializeCookie(name, value, { secure: this.secureCookies, sameSite: 'Strict', maxAgeS }));
  }

  clearCookie(ctx: Ctx, name: string): void {
    this.setCookie(ctx, name, '', 0);
  }

  /** The per-browser CSRF secret for pre-login forms (cookie), created when missing. */
  browserCsrfSecret(ctx: Ctx): string {
    let s = readCookie(ctx.get('cookie'), BROWSER_CSRF_COOKIE);
    if (!s || !/^[A-Za-z0-9_-]{16,64}$/.test(s)) {
      s = this.csrf.newBrowserSecret();
      this.setCookie(ctx, BROWSER_CSRF_COOKIE, s);
    }
    return s;
  }

  /** A one-shot message shown on the next page (signed, so a cookie planted from elsewhere is ignored). */
  flash(ctx: Ctx, kind: FlashKind, text: string): void {
    const payload = Buffer.from(JSON.stringify({ kind, text: text.slice(0, 1500) })).toString('base64url');
    this.setCookie(ctx, FLASH_COOKIE, `${payload}.${hmac(this.flashKey, payload)}`, 300);
  }

  private takeFlash(ctx: Ctx): Flash | null {
    const raw = readCookie(ctx.get('cookie'), FLASH_COOKIE);
    if (!raw) return null;
    this.clearCookie(ctx, FLASH_COOKIE);
    const [payload, mac] = raw.split('.');
    if (!payload || !mac || !safeEqual(hmac(this.flashKey, payload), mac)) return null;
    try {
      const f = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Flash;
      return ['ok', 'warn', 'error'].includes(f.kind) && typeof f.text === 'string' ? f : null;
    } catch {
      return null;
    }
  }

  /** Renders a page inside the layout. */
  render(ctx: Ctx, view: ViewName, locals: Record<string, unknown>, status = 200): void {
    const user = ctx.state.user;
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = VIEWS[view]({
      appTitle: 'Argos',
      section: '',
      me: user ? { username: user.username, mustChangePassword: user.mustChangePassword, totpEnabledAt: user.totpEnabledAt } : null,
      csrf: ctx.state.csrfToken ?? '',
      lanMode: this.deps.config.mode === 'lan',
      flash: this.takeFlash(ctx),
      errors: {},
      fmt,
      ...locals,
    });
  }

  /** Redirects after a form post (303: the browser follows with GET). */
  seeOther(ctx: Ctx, location: string): void {
    ctx.status = 303;
    ctx.redirect(location);
  }

  /** Pushes the configuration to Caddy; any exception becomes a failed result. */
  async applyCaddy(actor: Actor): Promise<CaddyApplyResult> {
    try {
      return await this.deps.caddy.apply(actor);
    } catch (err) {
      this.deps.log.error({ err }, 'caddy apply threw');
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  }

  async caddyStatus(): Promise<CaddyStatus> {
    try {
      return await this.deps.caddy.status();
    } catch (err) {
      return { reachable: false, inSync: null, lastError: err instanceof Error ? err.message : String(err), lastAppliedAt: null };
    }
  }

  /** After a change Caddy serves: apply it and flash the outcome (Caddy's refusal is shown verbatim). */
  async applyAndFlash(ctx: Ctx, done: string): Promise<CaddyApplyResult> {
    const r = await this.applyCaddy(this.actor(ctx));
    if (r.ok) this.flash(ctx, 'ok', `${done} Caddy configuration applied.`);
    else this.flash(ctx, 'error', `${done} Saved, but Caddy refused the new configuration: ${r.error}. The previous configuration keeps running.`);
    return r;
  }

  /** The one place errors become responses: CommandError and client errors keep their status, the rest is a vague 500. */
  renderError(ctx: Ctx, err: unknown): void {
    const e = err as { status?: unknown; expose?: unknown; message?: unknown };
    let status = 500;
    let message = 'Internal error';
    let fields: FieldErrors | undefined;
    if (err instanceof CommandError) {
      status = err.status;
      message = err.message;
      if (Object.keys(err.errors).length) fields = err.errors;
    } else if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
      status = e.status;
      message = e.expose && typeof e.message === 'string' ? e.message : 'Bad request';
    }
    if (status >= 500) this.deps.log.error({ err, path: ctx.path, method: ctx.method }, 'panel error');
    ctx.status = status;
    if (isApi(ctx)) {
      ctx.body = fields ? { error: message, fields } : { error: message };
      return;
    }
    try {
      this.render(
        ctx,
        'message',
        {
          pageTitle: 'Error',
          heading: status === 404 ? 'Not found' : status >= 500 ? 'Something went wrong' : 'Request refused',
          text: message,
          link: { href: '/', label: 'Dashboard' },
        },
        status,
      );
    } catch (renderErr) {
      this.deps.log.error({ err: renderErr }, 'error page failed to render');
      ctx.type = 'text';
      ctx.body = message;
    }
  }
}
