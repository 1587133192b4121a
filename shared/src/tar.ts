/**
 * A tiny, strict POSIX ustar writer and reader for Argos backups (no dependency).
 *
 * The writer emits regular-file entries only. The reader is for untrusted archives: it streams, checks every
 * header checksum, accepts nothing but regular files in the POSIX ustar format with a plain name (no prefix,
 * no directory part), and hands each entry to a handler that decides, from the header alone, whether to accept
 * it and where its bytes go. Anything else (links, devices, directories, pax/GNU extensions, base-256 sizes,
 * data after the end marker, a truncated stream) is refused with a reason.
 */

export const BLOCK = 512;

export class TarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarError';
  }
}

const TYPE_NAMES: Record<string, string> = {
  '1': 'a hard link',
  '2': 'a symbolic link',
  '3': 'a character device',
  '4': 'a block device',
  '5': 'a directory',
  '6': 'a FIFO',
  '7': 'a contiguous file',
  x: 'a pax extended header',
  g: 'a pax global header',
  L: 'a GNU long name',
  K: 'a GNU long link name',
};

export interface HeaderFields {
  name: string;
  size: number;
  /** Type flag: '0' regular file (default). Tests use other types to build hostile archives. */
  type?: string;
  linkname?: string;
  mode?: number;
  mtime?: number;
  prefix?: string;
  /** Override the magic (tests: non-ustar archives). */
  magic?: string;
}

function writeString(buf: Buffer, offset: number, length: number, value: string): void {
  const b = Buffer.from(value, 'utf8');
  if (b.length > length) throw new TarError(`tar field too long: ${value.slice(0, 40)}`);
  b.copy(buf, offset);
}

function writeOctal(buf: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new TarError(`tar number too large: ${value}`);
  writeString(buf, offset, length, digits.padStart(length - 1, '0') + '\0');
}

/** One 512-byte ustar header. */
export function tarHeader(h: HeaderFields): Buffer {
  const buf = Buffer.alloc(BLOCK);
  writeString(buf, 0, 100, h.name);
  writeOctal(buf, 100, 8, h.mode ?? 0o600);
  writeOctal(buf, 108, 8, 0);
  writeOctal(buf, 116, 8, 0);
  writeOctal(buf, 124, 12, h.size);
  writeOctal(buf, 136, 12, Math.floor((h.mtime ?? Date.now()) / 1000));
  buf.fill(0x20, 148, 156);
  writeString(buf, 156, 1, h.type ?? '0');
  writeString(buf, 157, 100, h.linkname ?? '');
  writeString(buf, 257, 8, h.magic ?? 'ustar\u000000');
  writeString(buf, 265, 32, 'argos');
  writeString(buf, 297, 32, 'argos');
  writeString(buf, 345, 155, h.prefix ?? '');
  let sum = 0;
  for (const b of buf) sum += b;
  writeString(buf, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return buf;
}

/** Zero bytes that pad an entry of `size` bytes to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The end-of-archive marker: two zero blocks. */
export const tarEnd = (): Buffer => Buffer.alloc(BLOCK * 2);

export interface EntryHeader {
  name: string;
  size: number;
}

/** Where an accepted entry's bytes go; `end` runs after the last byte. */
export interface EntrySink {
  write(chunk: Buffer): void | Promise<void>;
  end(): void | Promise<void>;
}

const cString = (b: Buffer) => {
  const nul = b.indexOf(0);
  return b.subarray(0, nul === -1 ? b.length : nul).toString('utf8');
};

function parseOctal(field: Buffer, what: string): number {
  if (field[0]! & 0x80) throw new TarError(`${what}: base-256 numbers are not accepted`);
  const text = cString(field).trim();
  if (!/^[0-7]{1,12}$/.test(text)) throw new TarError(`${what}: not an octal number`);
  const n = parseInt(text, 8);
  if (!Number.isSafeInteger(n)) throw new TarError(`${what}: out of range`);
  return n;
}

/** Parses and checks one header block (checksum, format, type, name shape). */
export function parseHeader(block: Buffer): EntryHeader {
  const stored = parseOctal(block.subarray(148, 156), 'header checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  if (sum !== stored) throw new TarError('a header checksum does not match (corrupt or not a tar archive)');
  const magic = block.subarray(257, 265).toString('latin1');
  if (magic !== 'ustar\u000000') throw new TarError('not a POSIX ustar archive');
  const type = String.fromCharCode(block[156]!);
  const name = cString(block.subarray(0, 100));
  if (type !== '0' && type !== '\0') {
    const what = TYPE_NAMES[type] ?? `an entry of unknown type "${type.replace(/[^\x20-\x7e]/g, '?')}"`;
    throw new TarError(`entry "${safeName(name)}" is ${what}; only regular files are accepted`);
  }
  const prefix = cString(block.subarray(345, 500));
  if (prefix) throw new TarError(`entry "${safeName(prefix)}/${safeName(name)}" has a directory prefix; only plain file names are accepted`);
  if (!name) throw new TarError('an entry has an empty name');
  if (name.startsWith('/')) throw new TarError(`entry "${safeName(name)}" has an absolute path`);
  if (name.split(/[/\\]/).includes('..')) throw new TarError(`entry "${safeName(name)}" climbs out of the archive (..)`);
  if (/[/\\]/.test(name)) throw new TarError(`entry "${safeName(name)}" has a directory part; only plain file names are accepted`);
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new TarError('an entry name has control characters');
  return { name, size: parseOctal(block.subarray(124, 136), `entry "${safeName(name)}" size`) };
}

/** An entry name safe to put in a message. */
export const safeName = (n: string): string => n.replace(/[^\x20-\x7e]/g, '?').slice(0, 120);

/**
 * Reads a tar stream. `onEntry` sees each header before any of its data and returns a sink (or throws to refuse).
 * Refuses a stream that ends early, a non-zero byte after the end marker, or a missing end marker.
 */
export async function readTar(source: AsyncIterable<Buffer>, onEntry: (h: EntryHeader) => EntrySink | Promise<EntrySink>): Promise<void> {
  let buf: Buffer = Buffer.alloc(0);
  let state = 'header' as 'header' | 'data' | 'pad' | 'end';
  let remaining = 0;
  let sink: EntrySink | null = null;
  let current = '';
  let size = 0;
  let zeroBlocks = 0;

  for await (const chunk of source) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (state === 'header') {
        if (buf.length < BLOCK) break;
        const block = buf.subarray(0, BLOCK);
        buf = buf.subarray(BLOCK);
        if (block.every((b) => b === 0)) {
          zeroBlocks++;
          if (zeroBlocks === 2) state = 'end';
          continue;
        }
        if (zeroBlocks) throw new TarError('a header follows a zero block (corrupt archive)');
        const h = parseHeader(block);
        current = h.name;
        size = h.size;
        sink = await onEntry(h);
        remaining = h.size;
        state = 'data';
        if (remaining === 0) {
          await sink.end();
          state = 'header';
        }
      } else if (state === 'data') {
        if (!buf.length) break;
        const take = Math.min(remaining, buf.length);
        await sink!.write(buf.subarray(0, take));
        buf = buf.subarray(take);
        remaining -= take;
        if (remaining === 0) {
          await sink!.end();
          remaining = (BLOCK - (size % BLOCK)) % BLOCK;
          state = remaining ? 'pad' : 'header';
        }
      } else if (state === 'pad') {
        if (!buf.length) break;
        const take = Math.min(remaining, buf.length);
        buf = buf.subarray(take);
        remaining -= take;
        if (remaining === 0) state = 'header';
      } else {
        if (!buf.every((b) => b === 0)) throw new TarError('data after the end of the archive');
        buf = Buffer.alloc(0);
        break;
      }
    }
  }
  if (state === 'data' || state === 'pad') throw new TarError(`the archive is truncated (inside entry "${safeName(current)}")`);
  if (state !== 'end') throw new TarError('the archive is truncated (no end marker)');
}
