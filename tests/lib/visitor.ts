/**
 * A scripted visitor for black-box tests through real Caddy: a cookie jar that honours Domain and Path the way a
 * browser does (host-only cookies stay on their host; Domain=x.test reaches x.test and its subdomains), one
 * User-Agent and one client address (a 127.0.0.0/8 address the socket binds to), and helpers for the portal forms.
 * Redirects are never followed automatically, so a test can stop at any step and replay or hand over a URL.
 */
import type { Argos, RawResponse } from './argos.ts';

interface Cookie {
  name: string;
  value: string;
  /** Domain attribute (lowercase, no leading dot), or null for a host-only cookie. */
  domain: string | null;
  host: string;
  path: string;
}

export interface VisitorOptions {
  localAddress?: string;
  userAgent?: string;
}

const pathMatches = (cookiePath: string, p: string) => p === cookiePath || p.startsWith(cookiePath.endsWith('/') ? cookiePath : `${cookiePath}/`);

export class Visitor {
  private jar: Cookie[] = [];
  readonly userAgent: string;

  constructor(
    private readonly argos: Argos,
    readonly opts: VisitorOptions = {},
  ) {
    this.userAgent = opts.userAgent ?? 'Mozilla/5.0 (X11; Linux x86_64) argos-e2e';
  }

  get portal(): string {
    return `http://${this.argos.portalHost}:${this.argos.ports.caddy}`;
  }

  /** The Cookie header this visitor's browser would send to `url`. */
  cookieHeader(url: string): string {
    const u = new URL(url);
    const host = u.hostname.toLowerCase();
    return this.jar
      .filter((c) => (c.domain ? host === c.domain || host.endsWith(`.${c.domain}`) : host === c.host) && pathMatches(c.path, u.pathname))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  /** A cookie's value: the one that would be sent to `url`, or the first stored under that name. */
  cookie(name: string, url?: string): string | undefined {
    if (url)
      return this.cookieHeader(url)
        .split('; ')
        .find((c) => c.startsWith(`${name}=`))
        ?.slice(name.length + 1);
    return this.jar.find((c) => c.name === name)?.value;
  }

  /** Puts a cookie into the jar directly (e.g. one an attacker planted from a sibling subdomain). */
  setCookie(name: string, value: string, domain: string | null, host: string, path = '/'): void {
    this.store({ name, value, domain, host, path });
  }

  private store(c: Cookie, expired = false): void {
    this.jar = this.jar.filter((x) => !(x.name === c.name && x.domain === c.domain && x.path === c.path && (c.domain || x.host === c.host)));
    if (!expired) this.jar.push(c);
  }

  private absorb(url: string, res: RawResponse): void {
    const host = new URL(url).hostname.toLowerCase();
    for (const line of res.headers['set-cookie'] ?? []) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      let domain: string | null = null;
      let path = '/';
      let expired = value === '';
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        if (k!.toLowerCase() === 'domain') domain = v.replace(/^\./, '').toLowerCase();
        if (k!.toLowerCase() === 'path') path = v || '/';
        if (k!.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      // A browser refuses a cookie for a domain that does not cover the host that set it.
      if (domain && host !== domain && !host.endsWith(`.${domain}`)) continue;
      this.store({ name, value, domain, host, path }, expired);
    }
  }

  /** One request to an absolute URL through Caddy, with this visitor's cookies, User-Agent and address. */
  async request(url: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawResponse> {
    const u = new URL(url);
    const cookie = this.cookieHeader(url);
    const headers: Record<string, string> = {
      Accept: 'text/html,application/xhtml+xml',
      'User-Agent': this.userAgent,
      ...(cookie ? { Cookie: cookie } : {}),
      ...o.headers,
    };
    const res = await this.argos.viaCaddy(u.host, `${u.pathname}${u.search}`, {
      method: o.method,
      headers,
      body: o.body,
      localAddress: this.opts.localAddress,
    });
    this.absorb(url, res);
    return res;
  }

  get(url: string, headers?: Record<string, string>): Promise<RawResponse> {
    return this.request(url, { headers });
  }

  /** Submits a form (urlencoded), as a top-level navigation would. */
  post(url: string, form: Record<string, string>, headers?: Record<string, string>): Promise<RawResponse> {
    return this.request(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'document', ...headers },
      body: new URLSearchParams(form).toString(),
    });
  }

  /** The CSRF field of a portal page (the portal sets the matching per-browser cookie on the first visit). */
  async csrf(path = '/login'): Promise<string> {
    const page = await this.get(`${this.portal}${path}`);
    const token = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1];
    if (!token) throw new Error(`no CSRF field on ${path}: ${page.status} ${page.body.slice(0, 200)}`);
    return token;
  }

  /** POST /login with a freshly loaded form. */
  async login(username: string, password: string, rd = '', extra: Record<string, string> = {}): Promise<RawResponse> {
    const _csrf = await this.csrf(`/login${rd ? `?rd=${encodeURIComponent(rd)}` : ''}`);
    return this.post(`${this.portal}/login`, { _csrf, username, password, rd, ...extra });
  }

  /** POST /login/2fa with a TOTP or recovery code. */
  async secondFactor(code: string): Promise<RawResponse> {
    const _csrf = await this.csrf('/login/2fa');
    return this.post(`${this.portal}/login/2fa`, { _csrf, code });
  }

  /** The argos_session token this visitor's browser would send to `url`, if any. */
  session(url: string): string | undefined {
    return this.cookie('argos_session', url);
  }
}
