/**
 * Strict e-mail address parsing for single sign-on allow-lists. An address from an identity provider is
 * accepted only in one plain form: an ASCII dot-atom local part, exactly one '@', and a domain that is a
 * real DNS name (lowercased, IDN converted to punycode). Anything that needs a second look (quoted or
 * commented local parts, a second '@', whitespace or control characters, IP literals, a trailing dot,
 * Unicode that folds or maps to other characters such as fullwidth or mathematical letters, soft hyphens,
 * zero-width joiners) is refused rather than interpreted, so `x@evil@example.com`,
 * `x@example.com.evil.test` and lookalikes never match an allowed domain.
 */
import { domainToASCII, domainToUnicode } from 'node:url';

export interface ParsedEmail {
  /** The local part as sent (ASCII). */
  local: string;
  /** The domain in ASCII (punycode for IDNs), lowercase. */
  domain: string;
  /** local@domain, the form Argos stores and shows. */
  address: string;
  /** The comparison key: lowercase local part @ domain. */
  key: string;
}

const ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const LOCAL = new RegExp(`^${ATOM}(?:\\.${ATOM})*$`);
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** A domain name in its one ASCII spelling, or null when it is not a plain DNS name. */
export function normalizeEmailDomain(raw: string): string | null {
  if (!raw || raw.length > 253 || /[\s\u0000-\u001f\u007f]/.test(raw)) return null;
  if (raw.endsWith('.') || raw.startsWith('.') || raw.includes('..') || raw.startsWith('[')) return null;
  if (raw.normalize('NFC') !== raw) return null;
  const lower = raw.toLowerCase();
  const ascii = domainToASCII(lower);
  if (!ascii || ascii.length > 253) return null;
  // Refuse anything the IDN mapping changed (fullwidth letters, compatibility characters, ignored code
  // points): the domain must say, character for character, what it will be compared as.
  const plain = /^[\x21-\x7e]*$/.test(lower);
  if (plain ? ascii !== lower : domainToUnicode(ascii) !== lower) return null;
  const labels = ascii.split('.');
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return null;
  if (/^\d+$/.test(labels[labels.length - 1]!)) return null; // an IP address, not a domain
  return ascii;
}

/** Parses one e-mail address strictly (see the module comment); null when it is not acceptable. */
export function parseEmail(raw: unknown): ParsedEmail | null {
  if (typeof raw !== 'string' || raw.length < 3 || raw.length > 254) return null;
  if (/[\s\u0000-\u001f\u007f]/.test(raw)) return null;
  const at = raw.indexOf('@');
  if (at <= 0 || at !== raw.lastIndexOf('@')) return null;
  const local = raw.slice(0, at);
  if (local.length > 64 || !LOCAL.test(local)) return null;
  const domain = normalizeEmailDomain(raw.slice(at + 1));
  if (!domain) return null;
  return { local, domain, address: `${local}@${domain}`, key: `${local.toLowerCase()}@${domain}` };
}

export interface EmailAllowList {
  /** Exact addresses (compared on their key: lowercase local part, ASCII domain). */
  emails: readonly string[];
  /** Exact domains: no subdomains unless listed. */
  domains: readonly string[];
}

/** The allow-list in normalised form; entries that are not valid addresses or domains are returned as `invalid`. */
export function compileAllowList(l: EmailAllowList): { emails: Set<string>; domains: Set<string>; invalid: string[] } {
  const emails = new Set<string>();
  const domains = new Set<string>();
  const invalid: string[] = [];
  for (const e of l.emails) {
    const p = parseEmail(e.trim());
    if (p) emails.add(p.key);
    else invalid.push(e);
  }
  for (const d of l.domains) {
    const n = normalizeEmailDomain(d.trim().replace(/^@/, ''));
    if (n) domains.add(n);
    else invalid.push(d);
  }
  return { emails, domains, invalid };
}

/**
 * Whether an address passes the allow-list. Empty lists allow every address. When either list has entries,
 * the address must be listed itself or its domain must be one of the domains, exactly.
 */
export function emailAllowed(email: ParsedEmail | null, l: EmailAllowList): boolean {
  if (!l.emails.length && !l.domains.length) return true;
  if (!email) return false;
  const c = compileAllowList(l);
  return c.emails.has(email.key) || c.domains.has(email.domain);
}
