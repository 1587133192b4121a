/**
 * Malformed forward-auth requests for fuzzing the gatekeeper's /verify: a seeded PRNG (failures reproduce with the
 * same seed) and a generator of header lists built from realistic values (published hosts, rule paths, real session
 * tokens) and their mutations: other spellings, dot segments, percent-encodings, control characters, non-ASCII,
 * huge values, duplicated and missing headers, CR/LF injection. Requests go out either through node:http (a
 * keep-alive agent; Node refuses some bytes itself) or as raw bytes over a socket (anything goes).
 */
import http from 'node:http';
import net from 'node:net';

/** mulberry32: tiny, fast, good enough to fuzz with, and reproducible. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

export type HeaderList = [name: string, value: string][];

export interface FuzzInput {
  /** Published hosts and Argos's own, by role. */
  hosts: readonly string[];
  /** Paths worth aiming at (rule paths, their neighbours). */
  paths: readonly string[];
  /** Session tokens (valid, revoked, …) to put into cookies. */
  tokens: readonly string[];
}

const CONTROL = [...Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)), '\x7f'];
const LATIN1 = Array.from({ length: 128 }, (_, i) => String.fromCharCode(0x80 + i));
const WIDE = ['\u202e', '\u200b', '\uff0e', '\u2215', '\u2044', 'ä', '€', '\ud83d\ude00', '\ufeff', '\u0130', 'ſ', '\u212a'];
const PATH_BITS = [
  '../',
  '..',
  './',
  '.',
  '//',
  '/',
  '%2e%2e/',
  '%2E%2e/',
  '.%2e/',
  '%2e./',
  '..%2f',
  '..%2F',
  '%2f',
  '%2F',
  '%5c',
  '%5C',
  '\\',
  '..\\',
  '%00',
  '%0a',
  '%0d%0a',
  '%zz',
  '%',
  '%2',
  '%u002e',
  '%252e%252e/',
  ';',
  '..;/',
  ';jsessionid=x',
  '?',
  '#',
  '?a=1&b=2',
  '%20',
  ' ',
  '+',
  '*',
  '~',
  '%7e',
  '%41',
  '%c0%ae',
  '%e2%80%ae',
  '%ff',
];
const METHODS = [
  'GET',
  'POST',
  'HEAD',
  'OPTIONS',
  'PUT',
  'DELETE',
  'PATCH',
  'CONNECT',
  'TRACE',
  'PROPFIND',
  'get',
  'Get',
  '',
  ' GET',
  'GET ',
  'G ET',
  'GET\t',
  'X'.repeat(17),
  'GET,POST',
  '1',
];
const PROTOS = ['http', 'https', 'HTTP', 'Https', 'ws', 'wss', 'ftp', '', 'http ', ' https', 'http,https', 'https, http', 'javascript'];
const ACCEPTS = [
  'text/html',
  'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'application/json',
  '*/*',
  '',
  'text/*',
  'TEXT/HTML',
  'application/json, text/html',
  'image/webp',
];
const FETCH_MODES = ['navigate', 'cors', 'no-cors', 'same-origin', 'websocket', 'NAVIGATE', ''];
const FETCH_DESTS = ['document', 'iframe', 'empty', 'script', 'image', 'DOCUMENT', ''];
const EXTRA_NAMES = [
  'Forwarded',
  'X-Real-IP',
  'X-Original-URL',
  'X-Rewrite-URL',
  'X-Original-Host',
  'X-Forwarded-Port',
  'X-Forwarded-Prefix',
  'Remote-User',
  'Remote-Groups',
  'X-Argos-Portal',
  'Host',
  'Via',
  'True-Client-IP',
  'CF-Connecting-IP',
  'X-HTTP-Method-Override',
];

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

export class FuzzGen {
  constructor(
    private readonly r: Rng,
    private readonly input: FuzzInput,
  ) {}

  private randomText(max: number): string {
    const r = this.r;
    const n = r.int(max);
    let s = '';
    for (let i = 0; i < n; i++) {
      const k = r.int(20);
      s += k < 14 ? String.fromCharCode(0x21 + r.int(94)) : k < 16 ? r.pick(LATIN1) : k < 17 ? r.pick(CONTROL) : k < 18 ? r.pick(WIDE) : ' ';
    }
    return s;
  }

  /** Random damage to a value: insertions, deletions, case, encodings, repetition to a huge size. */
  mutate(v: string): string {
    const r = this.r;
    let s = v;
    const rounds = r.int(3);
    for (let i = 0; i < rounds; i++) {
      const at = r.int(s.length + 1);
      switch (r.int(12)) {
        case 0:
          s = s.slice(0, at) + r.pick(CONTROL) + s.slice(at);
          break;
        case 1:
          s = s.slice(0, at) + r.pick(LATIN1) + s.slice(at);
          break;
        case 2:
          s = s.slice(0, at) + r.pick(WIDE) + s.slice(at);
          break;
        case 3:
          s = s.slice(0, at) + s.slice(at + 1 + r.int(4));
          break;
        case 4:
          s = r.chance(0.5) ? s.toUpperCase() : s.toLowerCase();
          break;
        case 5: {
          const c = s[at];
          if (c) s = s.slice(0, at) + '%' + c.charCodeAt(0).toString(16).padStart(2, '0')[r.chance(0.5) ? 'toUpperCase' : 'toLowerCase']() + s.slice(at + 1);
          break;
        }
        case 6:
          s = s.slice(0, at) + r.pick(PATH_BITS) + s.slice(at);
          break;
        case 7:
          s = s.repeat(2 + r.int(r.chance(0.1) ? 2000 : 20));
          break;
        case 8:
          s = s.slice(0, at) + '\r\n' + s.slice(at);
          break;
        case 9:
          s = ` ${s}\t`;
          break;
        case 10:
          s = s.slice(0, at) + this.randomText(8) + s.slice(at);
          break;
        default:
          s = s + ',' + s;
      }
    }
    return s;
  }

  host(): string {
    const r = this.r;
    const h = r.pick(this.input.hosts);
    const spelled = r.pick([
      h,
      h.toUpperCase(),
      `${h}.`,
      `${h}..`,
      `.${h}`,
      `${h}:${r.int(70000)}`,
      `${h}:`,
      `${h}:80:80`,
      `${h}.:443`,
      `${h}@evil.example`,
      `evil.example@${h}`,
      `evil.example/${h}`,
      `${h}/evil`,
      `${h}#x`,
      `${h}%00`,
      `${h} `,
      `${h},${r.pick(this.input.hosts)}`,
      `xn--${h}`,
      `[${h}]`,
      '[::1]',
      '[::ffff:127.0.0.1]:80',
      '127.0.0.1',
      '',
      'a'.repeat(64) + '.example.test',
      'bücher.example.test',
      'xn--bcher-kva.example.test',
    ]);
    return r.chance(0.3) ? this.mutate(spelled) : spelled;
  }

  uri(): string {
    const r = this.r;
    let u = r.pick(this.input.paths);
    const n = r.int(4);
    for (let i = 0; i < n; i++) {
      const segs = u.split('/');
      const at = 1 + r.int(Math.max(1, segs.length - 1));
      segs.splice(at, 0, r.pick(PATH_BITS).replace(/\/$/, ''));
      u = segs.join('/');
    }
    if (r.chance(0.05)) u = `http://${r.pick(this.input.hosts)}${u}`;
    if (r.chance(0.03)) u = u.replace(/^\/+/, '');
    if (r.chance(0.3)) u = this.mutate(u);
    return u;
  }

  xff(): string {
    const r = this.r;
    const ip = () =>
      r.pick([
        `203.0.113.${r.int(256)}`,
        `198.51.100.${r.int(256)}`,
        `2001:db8::${r.int(65536).toString(16)}`,
        `::ffff:203.0.113.${r.int(256)}`,
        '127.0.0.1',
        '127.0.0.5',
        '10.0.0.1',
        '::1',
      ]);
    const v = r.pick([
      ip(),
      ip(),
      ip(),
      `${ip()}, ${ip()}`,
      `${ip()},${ip()},${ip()}`,
      'unknown',
      '',
      `${ip()}:1234`,
      `[${ip()}]`,
      ' , ',
      `${ip()}, garbage`,
      Array.from({ length: 50 }, ip).join(', '),
    ]);
    return r.chance(0.2) ? this.mutate(v) : v;
  }

  cookie(): string {
    const r = this.r;
    const t = r.pick(this.input.tokens);
    const v = r.pick([
      `argos_session=${t}`,
      `theme=dark; argos_session=${t}; lang=en`,
      `argos_session=${t}; argos_session=${t}`,
      `argos_session=${t}x`,
      `argos_session=${t.slice(0, -1)}`,
      `argos_session="${t}"`,
      `ARGOS_SESSION=${t}`,
      ` argos_session = ${t} `,
      `argos_session=`,
      `argos_session`,
      `argos_session=${'A'.repeat(43)}`,
      `argos_csrf=${t}; argos_2fa=${t}`,
      `argos_session=${t};`.repeat(3),
      'a=b'.repeat(r.int(3000)),
    ]);
    return r.chance(0.25) ? this.mutate(v) : v;
  }

  authorization(): string {
    const r = this.r;
    const v = r.pick([
      `Bearer argos_${this.randomText(40)}`,
      `Bearer ${r.pick(this.input.tokens)}`,
      'Bearer ',
      `bearer argos_${'a'.repeat(43)}`,
      `Basic ${b64('alice:not-her-password')}`,
      `Basic ${b64(':')}`,
      'Basic !!!!',
      `Basic ${b64('\u0000:\u0000')}`,
      'Digest username="alice"',
      'Negotiate YII=',
      '',
      `Bearer ${'x'.repeat(5000)}`,
    ]);
    return r.chance(0.25) ? this.mutate(v) : v;
  }

  /** A fuzzed value for a header, by name. */
  private fuzzed(name: string): string {
    const r = this.r;
    switch (name.toLowerCase()) {
      case 'x-forwarded-method':
        return r.chance(0.3) ? this.mutate(r.pick(METHODS)) : r.pick(METHODS);
      case 'x-forwarded-proto':
        return r.chance(0.3) ? this.mutate(r.pick(PROTOS)) : r.pick(PROTOS);
      case 'x-forwarded-host':
        return this.host();
      case 'x-forwarded-uri':
        return this.uri();
      case 'x-forwarded-for':
        return this.xff();
      case 'cookie':
        return this.cookie();
      case 'authorization':
        return this.authorization();
      default:
        return r.chance(0.5) ? this.mutate(r.pick([this.host(), this.uri(), r.pick(ACCEPTS)])) : this.randomText(60);
    }
  }

  /**
   * One forward-auth request as an ordered header list (names may repeat): a well-formed request, as Caddy would
   * send it, then between zero and six kinds of damage, so the fuzz reaches every verdict and not only the parser.
   */
  headers(): HeaderList {
    const r = this.r;
    const { hosts, paths, tokens } = this.input;
    const h: HeaderList = [
      ['X-Forwarded-Method', r.pick(['GET', 'GET', 'GET', 'POST', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])],
      ['X-Forwarded-Proto', r.pick(['http', 'https'])],
      ['X-Forwarded-Host', r.pick(hosts) + r.pick(['', '', ':8080', '.'])],
      ['X-Forwarded-Uri', r.pick(paths)],
    ];
    if (r.chance(0.7))
      h.push(['X-Forwarded-For', r.pick([`203.0.113.${r.int(256)}`, `2001:db8::${r.int(65536).toString(16)}`, `198.51.100.${r.int(256)}, 127.0.0.1`])]);
    if (r.chance(0.5)) h.push(['Cookie', `argos_session=${r.pick(tokens)}`]);
    if (r.chance(0.6)) h.push(['Accept', r.pick(ACCEPTS)]);
    if (r.chance(0.2)) h.push(['Sec-Fetch-Mode', r.pick(FETCH_MODES)]);
    if (r.chance(0.5)) h.push(['User-Agent', 'Mozilla/5.0 fuzz']);

    const damage = r.pick([0, 0, 1, 1, 2, 3, 4, 6]);
    for (let d = 0; d < damage; d++) {
      const k = r.int(10);
      if (k < 4 && h.length) {
        const i = r.int(h.length);
        h[i] = [h[i]![0], r.chance(0.7) ? this.fuzzed(h[i]![0]) : this.mutate(h[i]![1])];
      } else if (k === 4 && h.length) {
        h.splice(r.int(h.length), 1);
      } else if (k === 5 && h.length) {
        const [name] = r.pick(h);
        h.push([name, this.fuzzed(name)]);
      } else if (k === 6) {
        h.push(['Authorization', this.authorization()]);
      } else if (k === 7) {
        const [name, value] = r.pick([
          ['Sec-Fetch-Mode', r.pick(FETCH_MODES)],
          ['Sec-Fetch-Dest', r.pick(FETCH_DESTS)],
          ['X-Requested-With', r.pick(['XMLHttpRequest', '', 'fetch'])],
          ['Upgrade', r.pick(['websocket', 'WebSocket', 'h2c', ''])],
          ['Accept', this.mutate(r.pick(ACCEPTS))],
          ['User-Agent', this.randomText(300)],
        ] as const);
        h.push([name, value]);
        if (name === 'Upgrade') h.push(['Connection', 'Upgrade']);
      } else if (k === 8) {
        h.push([r.pick(EXTRA_NAMES), this.fuzzed('')]);
      } else {
        h.sort(() => this.r.next() - 0.5);
      }
    }
    return h;
  }
}

export interface FuzzResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
}

/** node:http with a keep-alive agent. Throws synchronously when Node refuses a header (invalid bytes). */
export function sendWithNode(agent: http.Agent, port: number, method: string, h: HeaderList): Promise<FuzzResponse> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of h) {
    const prev = headers[name];
    headers[name] = prev === undefined ? value : ([] as string[]).concat(prev, value);
  }
  return new Promise((resolve, reject) => {
    // Node's client keeps a socket that carried an Upgrade request in upgrade mode even after a normal answer, and
    // would hang the next request reusing it: such requests get a socket of their own (the server is not at fault).
    const upgrade = h.some(([n]) => /^(upgrade|connection)$/i.test(n));
    const req = http.request({ host: '127.0.0.1', port, method, path: '/verify', headers, agent: upgrade ? false : agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Raw bytes over a fresh socket, whatever the header values hold; the status of the answer, or 0 for none. */
export function sendRaw(port: number, method: string, h: HeaderList, o: { utf8: boolean; bareLf: boolean }): Promise<FuzzResponse> {
  const eol = o.bareLf ? '\n' : '\r\n';
  const text = `${method} /verify HTTP/1.1${eol}Host: 127.0.0.1:${port}${eol}${h.map(([n, v]) => `${n}: ${v}${eol}`).join('')}Connection: close${eol}${eol}`;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(10_000, () => s.destroy(new Error('raw request timeout')));
    s.on('data', (c) => chunks.push(c));
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? undefined : reject(e)));
    s.on('close', () => {
      const head = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      const headers: http.IncomingHttpHeaders = {};
      for (const line of head.split('\r\n\r\n')[0]!.split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: m ? Number(m[1]) : 0, headers });
    });
    s.end(Buffer.from(text, o.utf8 ? 'utf8' : 'latin1'));
  });
}
