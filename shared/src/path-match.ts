/**
 * Path patterns for host rules, matched against the normalised path only.
 * - No `*`: the path itself or anything below it at a segment boundary (`/api/health` matches `/api/health/x`, not `/api/healthz`).
 * - `*` matches within one segment, `**` across segments (`/static/**`, `/api/*\/status`).
 * Matching is case-sensitive, like the paths upstreams serve.
 */
const cache = new Map<string, RegExp>();

function compile(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else re += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp('^' + re + '$');
}

export function pathMatches(pattern: string, path: string): boolean {
  if (!pattern.includes('*')) {
    const p = pattern.endsWith('/') && pattern.length > 1 ? pattern.slice(0, -1) : pattern;
    return path === p || path.startsWith(p === '/' ? '/' : p + '/');
  }
  let re = cache.get(pattern);
  if (!re) {
    re = compile(pattern);
    if (cache.size < 10_000) cache.set(pattern, re);
  }
  return re.test(path);
}

/** Validates an operator's pattern: absolute, no dot segments, no query, no backslash. */
export function patternProblem(pattern: string): string | null {
  if (!pattern.startsWith('/')) return `"${pattern}" must start with /`;
  if (/[?#\\\s]/.test(pattern)) return `"${pattern}" must not contain ?, #, \\ or spaces`;
  if (pattern.split('/').some((s) => s === '.' || s === '..')) return `"${pattern}" must not contain . or .. segments`;
  return null;
}
