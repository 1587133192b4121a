/**
 * Return-URL (`rd`) validation: the one function used by the login form, the login POST and logout.
 * Accepts only an absolute http(s) URL whose host is a published host or the portal, with no userinfo,
 * no backslashes or encoded separators in the authority, no control characters or whitespace, and no
 * downgrade from an https portal. Anything else → null (the caller falls back to the portal home).
 */
import { normalizeHost } from '@argos/shared/hostname';

export interface ReturnUrlPolicy {
  portal: URL;
  isKnownHost: (normalizedHost: string) => boolean;
}

export function safeReturnUrl(raw: unknown, policy: ReturnUrlPolicy): string | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 4096) return null;
  if (/[\x00-\x20\x7f-\uffff\\]/.test(raw)) return null;
  const m = /^(https?):\/\/([^/?#]*)/i.exec(raw);
  if (!m) return null;
  const authority = m[2]!;
  if (!authority || /[@%]/.test(authority)) return null;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  if (u.username || u.password) return null;
  // The URL parser must read the same host as the text shows; a mismatch means a parser trick.
  const host = normalizeHost(u.host);
  if (!host || normalizeHost(authority) !== host) return null;
  if (policy.portal.protocol === 'https:' && u.protocol !== 'https:') return null;
  const portalHost = normalizeHost(policy.portal.host);
  if (host !== portalHost && !policy.isKnownHost(host)) return null;
  return u.toString();
}
