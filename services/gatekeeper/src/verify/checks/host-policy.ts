/**
 * host policy: unknown or disabled hosts are refused; otherwise the host's ordered rules may lower the
 * requirement (bypass) or raise it (deny, two_factor) for matching paths, methods and client networks.
 */
import type { Check } from './check.ts';
import type { HostRule, Policy } from '@argos/shared/repos/hosts';
import { cidrContains, parseCidr } from '@argos/shared/net';
import { cont, deny } from '../verdict.ts';
import { pathMatches } from '@argos/shared/path-match';

export function ruleMatches(rule: HostRule, method: string, path: string, ip: string): boolean {
  if (rule.methods.length && !rule.methods.includes(method)) return false;
  if (rule.paths.length && !rule.paths.some((p) => pathMatches(p, path))) return false;
  if (rule.networks.length && !rule.networks.some((n) => {
    const c = parseCidr(n);
    return c !== null && cidrContains(c, ip);
  })) return false;
  return true;
}

const STRICTNESS: Record<Policy, number> = { bypass: 0, one_factor: 1, two_factor: 2, deny: 3 };

/**
 * The spelling of a path some upstreams act on: lower case (case-insensitive routers), `;params` dropped
 * (Tomcat, Spring), `%2F`/`%2E` decoded (decode-then-route servers), trailing dots dropped (IIS).
 */
export function laxPath(path: string): string {
  return path
    .replace(/%2F/gi, '/')
    .replace(/%2E/gi, '.')
    .split('/')
    .map((seg) => seg.replace(/;.*$/, '').replace(/\.+$/, ''))
    .join('/')
    .toLowerCase();
}

export const hostPolicyCheck: Check = {
  name: 'host_policy',
  run(ctx) {
    const host = ctx.host;
    if (!host) return deny('unknown_host', `${ctx.target.host} is not published in Argos`);
    if (!host.enabled) return deny('host_disabled');
    ctx.policy = host.policy;
    for (const rule of host.rules) {
      if (ruleMatches(rule, ctx.target.method, ctx.target.path, ctx.target.clientIp)) {
        ctx.policy = rule.policy;
        ctx.rule = rule.position;
        break;
      }
    }
    // A rule that raises the requirement also applies to other spellings an upstream may treat as its path
    // (`/Admin`, `/admin;x`, `/admin%2Fusers`): the strictest match wins, so no spelling slips under a deny.
    // (Only when some rule is stricter than the policy so far: most hosts have none, and /verify skips the work.)
    const stricter = host.rules.some((r) => STRICTNESS[r.policy] > STRICTNESS[ctx.policy!]);
    const lax = stricter ? laxPath(ctx.target.path) : ctx.target.path;
    if (lax !== ctx.target.path) {
      for (const rule of host.rules) {
        if (STRICTNESS[rule.policy] <= STRICTNESS[ctx.policy]) continue;
        const laxRule = { ...rule, paths: rule.paths.map((p) => p.toLowerCase()) };
        if (ruleMatches(laxRule, ctx.target.method, lax, ctx.target.clientIp)) {
          ctx.policy = rule.policy;
          ctx.rule = rule.position;
        }
      }
    }
    const why = ctx.rule !== null ? `rule #${ctx.rule}` : 'host default';
    if (ctx.policy === 'deny') return deny('policy_deny', why);
    return cont(`policy ${ctx.policy} (${why})`);
  },
};
