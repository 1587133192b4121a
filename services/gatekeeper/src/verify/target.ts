/** The parsed forward-auth request: what every check reads. Built only by parse.ts. */

export type ClientKind = 'navigation' | 'api';

export interface Target {
  requestId: string;
  /** Original method (X-Forwarded-Method), uppercase. */
  method: string;
  proto: 'http' | 'https';
  /** Normalised host: lowercase, no port, no trailing dot, punycode. */
  host: string;
  /** Host as the client addressed it, port included (for building return URLs). */
  authority: string;
  /** Normalised path: unreserved escapes decoded, dot segments resolved, slashes merged. */
  path: string;
  /** Raw query string without '?', or ''. */
  query: string;
  /** The original URI as sent (path + query), for return URLs. */
  rawUri: string;
  clientIp: string;
  clientKind: ClientKind;
  /** Whether a navigation is top-level (its URL may become the return URL). */
  topLevel: boolean;
  sessionToken: string | null;
  authorization: string | null;
  userAgent: string | null;
}

/** Builds the URL the visitor originally asked for. */
export function originalUrl(t: Pick<Target, 'proto' | 'authority' | 'rawUri'>): string {
  return `${t.proto}://${t.authority}${t.rawUri}`;
}
