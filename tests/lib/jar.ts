/**
 * A scriptable "browser" for black-box tests: its own cookie jar (domain, host-only and path rules), every
 * request sent to 127.0.0.1 on the URL's port with the URL's Host header (so *.example.test reaches Caddy
 * without DNS), and redirects followed by hand so a test can stop before a step (e.g. the SSO callback) and
 * replay, tamper with or hand over a URL.
 */
import http from 'node:http';

interface Cookie {
  name: string;
  value: string;
  domain: string;
  hostOnly: boolean;
  path: string;
}

export interface JarResponse {
  url: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  location: string | null;
}

export class CookieJarBrowser {
  private cookies: Cookie[] = [];

  constructor(readonly userAgent = 'Mozilla/5.0 (argos-e2e jar)') {}

  /** Cookies that would be sent to a URL, as a Cookie header value. */
  cookieHeader(url: string): string {
    const u = new URL(url);
    const host = u.hostname;
    return this.cookies
      .filter((c) => (c.hostOnly ? host === c.domain : host === c.domain || host.endsWith(`.${c.domain}`)))
      .filter((c) => u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) || c.path === '/')
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  cookie(url: string, name: string): string | null {
    const pair = this.cookieHeader(url)
      .split('; ')
      .find((p) => p.startsWith(`${name}=`));
    return pair ? pair.slice(name.length + 1) : null;
  }

  private store(url: string, setCookie: string[] | undefined): void {
    const u = new URL(url);
    for (const line of setCookie ?? []) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      let domain = u.hostname;
      let hostOnly = true;
      let path = '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        const key = k!.toLowerCase();
        if (key === 'domain' && v) {
          domain = v.replace(/^\./, '').toLowerCase();
          hostOnly = false;
        } else if (key === 'path' && v) path = v;
        else if (key === 'max-age' && Number(v) <= 0) expired = true;
      }
      this.cookies = this.cookies.filter((c) => !(c.name === name && c.domain === domain && c.path === path));
      if (!expired) this.cookies.push({ name, value, domain, hostOnly, path });
    }
  }

  /** One request (no redirect following). */
  request(url: string, o: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<JarResponse> {
    const u = new URL(url);
    const body = o.form ? new URLSearchParams(o.form).toString() : undefined;
    const headers: Record<string, string> = {
      Host: u.host,
      'User-Agent': this.userAgent,
      Accept: 'text/html,application/xhtml+xml',
      ...(body ? { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': String(Buffer.byteLength(body)) } : {}),
      ...o.headers,
    };
    const cookie = this.cookieHeader(url);
    if (cookie) headers.Cookie = cookie;
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: Number(u.port || 80), method: o.method ?? (body ? 'POST' : 'GET'), path: u.pathname + u.search, headers, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            this.store(url, res.headers['set-cookie']);
            const loc = res.headers.location ? new URL(res.headers.location, url).toString() : null;
            resolve({ url, status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), location: loc });
          });
        },
      );
      req.setTimeout(15_000, () => req.destroy(new Error(`request timeout: ${url}`)));
      req.on('error', reject);
      if (body) req.write(body);
      req.end();
    });
  }

  /**
   * Follows redirects (303 and 302 become GET) until a response is not a redirect, or until the next URL
   * satisfies `stopBefore` (that URL is returned unrequested in `next`).
   */
  async follow(
    url: string,
    o: { method?: string; form?: Record<string, string>; stopBefore?: (next: string) => boolean; max?: number } = {},
  ): Promise<JarResponse & { next: string | null; chain: string[] }> {
    let res = await this.request(url, o);
    const chain = [url];
    for (let i = 0; i < (o.max ?? 15) && res.location && res.status >= 300 && res.status < 400; i++) {
      if (o.stopBefore?.(res.location)) return { ...res, next: res.location, chain };
      chain.push(res.location);
      res = await this.request(res.location);
    }
    return { ...res, next: null, chain };
  }
}

/** The value of a hidden form field in an HTML page. */
export function field(html: string, name: string): string | null {
  const m = new RegExp(`name="${name}"[^>]*value="([^"]*)"`).exec(html) ?? new RegExp(`value="([^"]*)"[^>]*name="${name}"`).exec(html);
  return m ? m[1]!.replace(/&amp;/g, '&') : null;
}
