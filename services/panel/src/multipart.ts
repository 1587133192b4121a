/**
 * A small streaming multipart/form-data reader for the one upload the panel takes (a backup to restore).
 *
 * `uploadFields()` runs before the CSRF guard on the upload path only: it reads the small text fields that come
 * before the file (the form puts `_csrf` first) into the request body, and stops at the file part without reading
 * it. The CSRF guard and the re-authentication gate then run as for any form; only the route handler reads the
 * file, streaming it to disk with a size cap. Nothing of the file is stored unless every gate passed.
 */
import type Koa from 'koa';
import type { Readable } from 'node:stream';
import type { PanelState } from './web.ts';
import { CommandError } from '@argos/shared/commands/errors';

export interface PartHeader {
  name: string;
  filename: string | null;
}

const MAX_HEADER = 8 * 1024;

export class MultipartReader {
  private buf: Buffer;
  private readonly delim: Buffer;
  private readonly chunks: AsyncIterator<Buffer>;
  private ended = false;
  /** True while the reader is inside a body (or the preamble) that has unread bytes. */
  private inBody = true;
  private done = false;

  constructor(source: Readable, boundary: string) {
    this.delim = Buffer.from(`\r\n--${boundary}`);
    // The first boundary has no leading CRLF: prepend one so every boundary looks the same.
    this.buf = Buffer.from('\r\n');
    this.chunks = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.chunks.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : r.value;
    return true;
  }

  /** Reads body bytes of the current part up to the next boundary, handing them to `sink`. */
  private async body(sink: (b: Buffer) => void): Promise<void> {
    for (;;) {
      const i = this.buf.indexOf(this.delim);
      if (i >= 0) {
        if (i) sink(this.buf.subarray(0, i));
        this.buf = this.buf.subarray(i + this.delim.length);
        this.inBody = false;
        return;
      }
      const keep = this.delim.length - 1;
      if (this.buf.length > keep) {
        sink(this.buf.subarray(0, this.buf.length - keep));
        this.buf = this.buf.subarray(this.buf.length - keep);
      }
      if (!(await this.pull())) throw new CommandError('the upload ended early (truncated request)', 400);
    }
  }

  /** Moves to the next part and returns its name (and file name), or null at the end of the form. */
  async next(): Promise<PartHeader | null> {
    if (this.done) return null;
    // Skip the preamble (first call) or the unread rest of the current part, up to just past the boundary.
    if (this.inBody) await this.body(() => undefined);
    while (this.buf.length < 2) if (!(await this.pull())) throw new CommandError('the upload ended early (truncated request)', 400);
    if (this.buf.subarray(0, 2).toString('latin1') === '--') {
      this.done = true;
      return null;
    }
    let end: number;
    while ((end = this.buf.indexOf('\r\n\r\n')) < 0) {
      if (this.buf.length > MAX_HEADER) throw new CommandError('malformed upload (part headers too long)', 400);
      if (!(await this.pull())) throw new CommandError('the upload ended early (truncated request)', 400);
    }
    const head = this.buf.subarray(0, end).toString('utf8');
    this.buf = this.buf.subarray(end + 4);
    this.inBody = true;
    const disp = /^content-disposition:\s*form-data(.*)$/im.exec(head)?.[1] ?? '';
    const name = /;\s*name="([^"]*)"/i.exec(disp)?.[1];
    if (name === undefined) throw new CommandError('malformed upload (a part has no name)', 400);
    const filename = /;\s*filename="([^"]*)"/i.exec(disp)?.[1] ?? null;
    return { name, filename };
  }

  /** The current part's body as text, refused beyond `max` bytes. */
  async text(max = 4096): Promise<string> {
    const parts: Buffer[] = [];
    let n = 0;
    await this.body((b) => {
      n += b.length;
      if (n > max) throw new CommandError('a form field is too long', 400);
      parts.push(Buffer.from(b));
    });
    return Buffer.concat(parts).toString('utf8');
  }

  /** Streams the current part's body to `sink`; refuses (throws) once more than `max` bytes arrived. Returns the size. */
  async file(sink: (b: Buffer) => void, max: number): Promise<number> {
    let n = 0;
    await this.body((b) => {
      n += b.length;
      if (n > max) throw new CommandError(`the uploaded file is larger than the ${max}-byte limit`, 413);
      sink(b);
    });
    return n;
  }
}

export interface PendingUpload {
  reader: MultipartReader;
  /** The file part the reader stopped at (its body is unread). */
  part: PartHeader;
}

const PENDING = new WeakMap<object, PendingUpload>();

/** The upload waiting behind the gates for this request (null when the form had no file). */
export function takeUpload(ctx: Koa.ParameterizedContext<PanelState>): PendingUpload | null {
  const p = PENDING.get(ctx) ?? null;
  PENDING.delete(ctx);
  return p;
}

/**
 * Middleware for `paths` only (POST, multipart/form-data): text fields before the first file into the request
 * body, at most 20 of them; the file itself is left for the route (takeUpload).
 */
export function uploadFields(paths: RegExp): Koa.Middleware<PanelState> {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !paths.test(ctx.path) || !ctx.is('multipart/form-data')) return next();
    const boundary = /boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(ctx.get('content-type'));
    if (!boundary) throw new CommandError('malformed upload (no multipart boundary)', 400);
    const reader = new MultipartReader(ctx.req, boundary[1] ?? boundary[2]!);
    const fields: Record<string, string> = {};
    for (let i = 0; i < 20; i++) {
      const part = await reader.next();
      if (!part) break;
      if (part.filename !== null) {
        PENDING.set(ctx, { reader, part });
        break;
      }
      fields[part.name] = await reader.text();
    }
    ctx.request.body = fields;
    return next();
  };
}
