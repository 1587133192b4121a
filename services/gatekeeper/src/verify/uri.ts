/**
 * URI normalisation for rule matching, done once before any rule looks at the path.
 * Refuses (returns an error) rather than guesses: control characters, whitespace, invalid
 * percent-encoding, backslashes and paths that climb above the root.
 */

export type PathResult = { ok: true; path: string; query: string } | { ok: false; error: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const HEX = /^[0-9A-Fa-f]{2}$/;

/** True when raw[0..end) has no `%`, `#`, `\\`, `//` or segment starting with `.`: nothing to normalise. */
function isPlain(raw: string, end: number): boolean {
  let prevSlash = false;
  for (let i = 0; i < end; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 || c === 0x23 || c === 0x5c) return false;
    if (prevSlash && (c === 0x2f || c === 0x2e)) return false;
    prevSlash = c === 0x2f;
  }
  // A '#' in the query is cut off with the fragment by the slow path.
  return raw.indexOf('#', end) < 0;
}

/** Normalises a request URI (path + optional query). `fast: false` always takes the full pass (tests compare both). */
export function normalizeUri(raw: string, fast = true): PathResult {
  if (raw.length === 0 || raw.length > 8192) return { ok: false, error: 'uri empty or longer than 8192' };
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c > 0x7e) return { ok: false, error: 'uri has control, space or non-ASCII characters' };
  }
  const q = raw.indexOf('?');
  // Fast path: a plain path (no escapes, dot segments, repeated slashes, backslashes or fragment) is already normal.
  const pathEnd = q >= 0 ? q : raw.length;
  if (fast && raw.charCodeAt(0) === 0x2f && isPlain(raw, pathEnd)) return { ok: true, path: raw.slice(0, pathEnd), query: q >= 0 ? raw.slice(q + 1) : '' };
  const rawPath = (q >= 0 ? raw.slice(0, q) : raw).replace(/#.*$/, '');
  const query = q >= 0 ? raw.slice(q + 1).replace(/#.*$/, '') : '';
  if (!rawPath.startsWith('/')) return { ok: false, error: 'path must start with /' };
  if (rawPath.includes('\\')) return { ok: false, error: 'backslash in path' };

  // Decode unreserved escapes; keep every other escape (uppercased), so %2F never becomes a separator.
  let decoded = '';
  for (let i = 0; i < rawPath.length; i++) {
    const ch = rawPath[i]!;
    if (ch !== '%') {
      decoded += ch;
      continue;
    }
    const hex = rawPath.slice(i + 1, i + 3);
    if (!HEX.test(hex)) return { ok: false, error: 'invalid percent-encoding' };
    const code = parseInt(hex, 16);
    if (code < 0x20 || code === 0x7f) return { ok: false, error: 'encoded control character' };
    // Caddy re-encodes a raw backslash as %5C before forwarding: refuse it like the raw one (a separator to some upstreams).
    if (code === 0x5c) return { ok: false, error: 'encoded backslash in path' };
    const chr = String.fromCharCode(code);
    decoded += UNRESERVED.test(chr) ? chr : '%' + hex.toUpperCase();
    i += 2;
  }

  // Merge repeated slashes and resolve dot segments.
  const segments = decoded.split('/').slice(1);
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '' && !last) continue;
    if (s === '.') {
      if (last) out.push('');
      continue;
    }
    if (s === '..') {
      if (out.length === 0) return { ok: false, error: 'path escapes the root' };
      out.pop();
      if (last) out.push('');
      continue;
    }
    // A dot segment hidden behind an encoded separator (`..%2F`) or a path parameter (`..;x`) means `..` to some
    // upstreams (decode-then-resolve servers, Tomcat): ambiguous, so refused rather than guessed.
    if (s.split(/%2F|%5C/i).some((part) => /^\.{1,2}(;.*)?$/.test(part)) || /^\.{1,2};/.test(s)) return { ok: false, error: 'ambiguous dot segment' };
    out.push(s);
  }
  return { ok: true, path: '/' + out.join('/'), query };
}
