/**
 * Test helpers for in-process panel stories: the real app on a random port with a fake Caddy integration that
 * records its calls, and a tiny cookie-jar browser (manual redirects, forms with CSRF, JSON API).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '@argos/shared/config';
import type { Store } from '@argos/shared/store';
import { Regulator } from '@argos/shared/regulation';
import { silentLogger } from '@argos/shared/log';
import type { Actor } from '@argos/shared/audit';
import { createPanel, type CaddyApplyResult } from './app.ts';

export interface Harness {
  url: string;
  applied: Actor[];
  nextApply: CaddyApplyResult;
  close(): Promise<void>;
}

/** Starts a panel on a random port over a test database, with its own login regulator. */
export async function startPanel(store: Store, cfg: Config, now?: () => number): Promise<Harness> {
  const regulator = new Regulator({ limits: () => ({ maxFailures: 5, windowS: 300, banTimeS: 900 }) });
  const h: Harness = { url: '', applied: [], nextApply: { ok: true }, close: async () => undefined };
  const app = createPanel({
    config: cfg,
    db: store.db,
    vault: store.vault,
    regulator,
    log: silentLogger,
    now,
    caddy: {
      apply: async (actor) => (h.applied.push(actor), h.nextApply),
      status: async () => ({ reachable: true, inSync: true, lastError: null, lastAppliedAt: Date.now() }),
      preview: async () => ({ apps: { http: {} } }),
    },
  });
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  h.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  h.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return h;
}

export interface Res {
  status: number;
  headers: Headers;
  text: string;
  setCookies: string[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test responses are inspected loosely
  json(): any;
}

/** A tiny browser: a cookie jar, manual redirects, forms and JSON. */
export class Browser {
  readonly jar = new Map<string, string>();
  constructor(readonly base: string) {}

  async req(method: string, p: string, opts: { form?: Record<string, string>; json?: unknown; headers?: Record<string, string> } = {}): Promise<Res> {
    const headers: Record<string, string> = { 'user-agent': 'panel-test', ...opts.headers };
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (opts.form) {
      body = new URLSearchParams(opts.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(this.base + p, { method, headers, body, redirect: 'manual' });
    const setCookies = res.headers.getSetCookie();
    for (const c of setCookies) {
      const pair = c.split(';')[0]!;
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      if (/;\s*max-age=0/i.test(c)) this.jar.delete(name);
      else this.jar.set(name, pair.slice(eq + 1));
    }
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, setCookies, json: () => JSON.parse(text) };
  }

  get(p: string, headers?: Record<string, string>) {
    return this.req('GET', p, { headers });
  }

  /** The CSRF token of a page's forms. */
  async csrf(p = '/'): Promise<string> {
    const page = await this.get(p);
    const m = /name="_csrf" value="([^"]+)"/.exec(page.text);
    assert.ok(m, `no CSRF field on ${p} (status ${page.status})`);
    return m[1]!;
  }

  /** Posts a form with the page's CSRF token. */
  async submit(p: string, form: Record<string, string>, from = p): Promise<Res> {
    return this.req('POST', p, { form: { _csrf: await this.csrf(from), ...form } });
  }

  async login(username: string, password: string): Promise<Res> {
    const _csrf = await this.csrf('/login');
    return this.req('POST', '/login', { form: { username, password, _csrf, next: '/' } });
  }

  /** JSON API call with the session's CSRF token. */
  async api(method: string, p: string, json?: unknown): Promise<Res> {
    const session = await this.get('/api/v1/session');
    assert.equal(session.status, 200);
    return this.req(method, p, { json, headers: { 'x-csrf-token': session.json().csrfToken } });
  }
}

