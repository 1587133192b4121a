/**
 * IP address helpers: normalisation, CIDR parsing and matching, rate-bucket keys.
 * Addresses are compared as 16-byte arrays (IPv4 as ::ffff:a.b.c.d), so one code path serves both families.
 */
import { isIP } from 'node:net';

export interface Cidr {
  readonly text: string;
  readonly bytes: Uint8Array; // 16 bytes
  readonly prefix: number; // 0..128 over the 16-byte form
}

/** Normalises an address: strips brackets and zone, lowercases, turns IPv4-mapped IPv6 into IPv4. Returns null when not an IP. */
export function normalizeIp(raw: string): string | null {
  let s = raw.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const fam = isIP(s);
  if (fam === 4) return s;
  if (fam !== 6) return null;
  s = s.toLowerCase();
  const b = ipToBytes(s);
  if (!b) return null;
  if (isV4Mapped(b)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  return formatIpv6(b);
}

/** Canonical RFC 5952 text of a 16-byte IPv6 address (longest zero run compressed, lowercase). */
function formatIpv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return hex.slice(0, bestStart).join(':') + '::' + hex.slice(bestStart + bestLen).join(':');
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Parses an IPv4 or IPv6 literal into 16 bytes (IPv4 mapped). Null if invalid. */
export function ipToBytes(ip: string): Uint8Array | null {
  const fam = isIP(ip);
  const out = new Uint8Array(16);
  if (fam === 4) {
    const p = ip.split('.');
    out[10] = 0xff;
    out[11] = 0xff;
    for (let i = 0; i < 4; i++) out[12 + i] = Number(p[i]);
    return out;
  }
  if (fam !== 6) return null;
  let s = ip;
  let tailV4: number[] | null = null;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    tailV4 = s
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined ? (tail ? tail.split(':') : []) : [];
  const groups = tail !== undefined ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  if (groups.length !== 8) return null;
  for (let i = 0; i < 8; i++) {
    const v = parseInt(groups[i]!, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  if (tailV4) for (let i = 0; i < 4; i++) out[12 + i] = tailV4[i]!;
  return out;
}

/** Parses "a.b.c.d/n" or "x::/n" (a bare address is a host route). Null if invalid. */
export function parseCidr(text: string): Cidr | null {
  const [addr, bits, extra] = text.trim().split('/');
  if (extra !== undefined || !addr) return null;
  const ip = normalizeIp(addr);
  if (!ip) return null;
  const v4 = isIP(ip) === 4;
  const max = v4 ? 32 : 128;
  const n = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(n >= 0 && n <= max)) return null;
  const bytes = ipToBytes(ip)!;
  const prefix = v4 ? 96 + n : n;
  return { text: `${ip}/${n}`, bytes: maskBytes(bytes, prefix), prefix };
}

function maskBytes(b: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bitsLeft = prefix - i * 8;
    out[i] = bitsLeft >= 8 ? b[i]! : bitsLeft <= 0 ? 0 : b[i]! & (0xff << (8 - bitsLeft));
  }
  return out;
}

/** True when `ip` (normalised text or bytes) lies inside `cidr`. */
export function cidrContains(cidr: Cidr, ip: string | Uint8Array): boolean {
  const b = typeof ip === 'string' ? ipToBytes(ip) : ip;
  if (!b) return false;
  const full = cidr.prefix >> 3;
  for (let i = 0; i < full; i++) if (b[i] !== cidr.bytes[i]) return false;
  const rem = cidr.prefix & 7;
  if (rem === 0) return true;
  const mask = 0xff << (8 - rem);
  return (b[full]! & mask) === cidr.bytes[full];
}

export function inAnyCidr(cidrs: readonly Cidr[], ip: string): boolean {
  const b = ipToBytes(ip);
  if (!b) return false;
  for (const c of cidrs) if (cidrContains(c, b)) return true;
  return false;
}

/** The key a client is counted under: the IPv4 address, or the IPv6 /64 (one subscriber's prefix). */
export function clientKey(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const b = ipToBytes(ip)!;
  let s = '';
  for (let i = 0; i < 8; i += 2) s += ((b[i]! << 8) | b[i + 1]!).toString(16) + ':';
  return s + ':/64';
}
