/**
 * A login flood against the gatekeeper's portal: `concurrency` workers, each from its own 127.0.0.0/8 source address
 * (a distinct client for login regulation), each one fetching the sign-in form once (CSRF cookie + field, as a
 * browser does) and then posting wrong passwords back to back until stopped. Usernames are distinct per worker
 * and do not exist, so per-username slow-down never kicks in and every attempt is verified against the portal's
 * dummy argon2id hash: the same hashing work as a wrong password for a real user (constant-work by design).
 */
import http from 'node:http';

export interface FloodStats {
  attempts: number;
  /** Answers 401 "Invalid username or password": a password hash was checked. */
  rejected: number;
  /** 429: regulation or a full hashing queue (no hashing). */
  throttled: number;
  other: number;
  errors: number;
  seconds: number;
}

export interface LoginFlood {
  stop(): Promise<FloodStats>;
}

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  agent: http.Agent,
  o: { port: number; host: string; path: string; method: string; headers: Record<string, string>; body?: string; localAddress: string },
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: o.port, path: o.path, method: o.method, headers: { Host: o.host, ...o.headers }, agent, localAddress: o.localAddress },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (o.body) req.write(o.body);
    req.end();
  });
}

/** Source address of worker i: 127.0.1.1 … 127.0.1.250, then 127.0.2.x … */
export const floodAddress = (i: number) => `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;

export async function startLoginFlood(o: { port: number; portalHost: string; concurrency: number }): Promise<LoginFlood> {
  const stats: FloodStats = { attempts: 0, rejected: 0, throttled: 0, other: 0, errors: 0, seconds: 0 };
  let running = true;
  const started = Date.now();
  const workers: Promise<void>[] = [];
  const agents: http.Agent[] = [];
  const forms: { cookie: string; csrf: string }[] = [];
  // Fetch every worker's form first, so the timed part is only the flood of POSTs.
  await Promise.all(
    Array.from({ length: o.concurrency }, async (_, i) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      agents[i] = agent;
      const form = await request(agent, {
        port: o.port,
        host: o.portalHost,
        path: '/login',
        method: 'GET',
        headers: { Accept: 'text/html' },
        localAddress: floodAddress(i),
      });
      const cookie = (form.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]!).find((c) => c.startsWith('argos_csrf='));
      const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1];
      if (!cookie || !csrf) throw new Error(`login form without CSRF (${form.status}): ${form.body.slice(0, 300)}`);
      forms[i] = { cookie, csrf };
    }),
  );
  for (let i = 0; i < o.concurrency; i++) {
    const { cookie, csrf } = forms[i]!;
    const body = new URLSearchParams({ _csrf: csrf, username: `flood-${i}`, password: `wrong-password-${i}`, rd: '' }).toString();
    workers.push(
      (async () => {
        while (running) {
          try {
            const r = await request(agents[i]!, {
              port: o.port,
              host: o.portalHost,
              path: '/login',
              method: 'POST',
              headers: {
                'Content-Type': 'application/x-www-form-urlencoded',
                'Content-Length': String(Buffer.byteLength(body)),
                Cookie: cookie,
                Accept: 'text/html',
              },
              body,
              localAddress: floodAddress(i),
            });
            stats.attempts++;
            if (r.status === 401) stats.rejected++;
            else if (r.status === 429) stats.throttled++;
            else stats.other++;
          } catch {
            stats.errors++;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      })(),
    );
  }
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      for (const a of agents) a.destroy();
      stats.seconds = (Date.now() - started) / 1000;
      return stats;
    },
  };
}
