/**
 * Argos's authentication-failure log for CrowdSec's full agent: one JSON line per failure, next to Caddy's access
 * log (`argos-auth.log`), parsed by crowdsec/parsers/argos-auth.yaml and counted by crowdsec/scenarios/argos-bruteforce.yaml.
 *
 *   {"time":"2026-12-03T16:49:54.123Z","service":"argos-gatekeeper","event":"auth_failure","source_ip":"203.0.113.9","user":"alice"}
 *
 * Never on the request path's critical section: writes are buffered by a stream and dropped (counted) when the
 * backlog exceeds a bound, so a flood of failures cannot grow memory. The file is rotated once it passes a size
 * limit (one previous file kept), which CrowdSec's file acquisition follows.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface AuthFailure {
  ip: string;
  user?: string | null;
  /** Free-form short reason (never a password or token). */
  reason?: string;
}

export function authLogPath(caddyAccessLog: string): string {
  return path.join(path.dirname(caddyAccessLog), 'argos-auth.log');
}

const clean = (s: string) => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 128);

export class AuthFailureLog {
  private stream: fs.WriteStream | null = null;
  private written = 0;
  dropped = 0;

  constructor(
    readonly file: string,
    private readonly opts: { service?: string; maxBacklogBytes?: number; rotateBytes?: number; now?: () => number } = {},
  ) {}

  private open(): fs.WriteStream {
    if (this.stream) return this.stream;
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o750 });
    try {
      this.written = fs.statSync(this.file).size;
    } catch {
      this.written = 0;
    }
    // Opened synchronously so the file exists at once (a rotation right after must find it to rename it).
    const s = fs.createWriteStream(this.file, { fd: fs.openSync(this.file, 'a', 0o640) });
    s.on('error', () => {
      this.stream = null;
    });
    this.stream = s;
    return s;
  }

  record(f: AuthFailure): void {
    try {
      const s = this.open();
      if (s.writableLength > (this.opts.maxBacklogBytes ?? 1 << 20)) {
        this.dropped++;
        return;
      }
      const line =
        JSON.stringify({
          time: new Date((this.opts.now ?? Date.now)()).toISOString(),
          service: this.opts.service ?? 'argos',
          event: 'auth_failure',
          source_ip: clean(f.ip),
          user: f.user ? clean(f.user) : '',
          ...(f.reason ? { reason: clean(f.reason) } : {}),
        }) + '\n';
      s.write(line);
      this.written += line.length;
      if (this.written > (this.opts.rotateBytes ?? 20 * 1024 * 1024)) this.rotate();
    } catch {
      this.dropped++;
    }
  }

  private rotate(): void {
    const s = this.stream;
    this.stream = null;
    s?.end();
    try {
      fs.renameSync(this.file, `${this.file}.1`);
    } catch {
      /* next write reopens whatever is there */
    }
    this.written = 0;
  }

  close(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    return new Promise((resolve) => (s ? s.end(() => resolve()) : resolve()));
  }
}
