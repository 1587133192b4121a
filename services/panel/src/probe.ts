/** Upstream reachability, checked only when the operator asks: a TCP connection to each upstream, 2 s at most. */
import net from 'node:net';

export async function probeUpstreams(upstreams: string[]): Promise<{ ok: boolean; text: string }[]> {
  return Promise.all(
    upstreams.map(async (raw) => {
      const u = new URL(raw);
      const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
      const host = u.hostname.replace(/^\[|\]$/g, '');
      const err = await new Promise<string | null>((resolve) => {
        const s = net.connect({ host, port, timeout: 2000 });
        s.once('connect', () => (s.destroy(), resolve(null)));
        s.once('timeout', () => (s.destroy(), resolve('no answer within 2 s')));
        s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      });
      return err ? { ok: false, text: `${raw}: not reachable from Argos (${err}). Caddy will answer 502 until it is.` } : { ok: true, text: `${raw}: reachable.` };
    }),
  );
}
