/**
 * Host name normalisation: one spelling per host, so every variant meets the same policy.
 * Lowercase, port and one trailing dot removed, IDN converted to punycode (A-labels).
 */
import { domainToASCII } from 'node:url';
import { isIP } from 'node:net';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Normalises a Host / X-Forwarded-Host value. Returns null when it is not a valid host name or IP literal. */
export function normalizeHost(raw: string): string | null {
  let h = raw.trim();
  if (!h || h.length > 300) return null;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    const ip = h.slice(1, end);
    const rest = h.slice(end + 1);
    if (rest && !/^:\d{1,5}$/.test(rest)) return null;
    return isIP(ip) === 6 ? `[${ip.toLowerCase()}]` : null;
  }
  const colon = h.lastIndexOf(':');
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return null;
    h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (isIP(h) === 4) return h;
  if (/[\s/\\@?#%]/.test(h)) return null;
  const ascii = domainToASCII(h.toLowerCase());
  if (!ascii || ascii.length > 253) return null;
  if (!ascii.split('.').every((l) => LABEL.test(l))) return null;
  return ascii;
}

/** True when `host` equals `domain` or is a subdomain of it (the cookie-domain rule). */
export function domainCovers(domain: string, host: string): boolean {
  const d = domain.replace(/^\./, '').toLowerCase();
  return host === d || host.endsWith('.' + d);
}
