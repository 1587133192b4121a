/**
 * geo: per-host country allow-list or deny-list; hosts whose rule is 'inherit' use the global default.
 * Private, loopback, link-local and CGNAT addresses are the pseudo-country LAN; addresses the database does not
 * know are "unknown"; each has its own choice. The country is looked up (and traced) even without a rule.
 */
import type { Check } from './check.ts';
import type { Host } from '@argos/shared/repos/hosts';
import type { GeoRule, Lookups } from '../lookups.ts';
import { cont, deny } from '../verdict.ts';

/** The rule that applies to a host: its own, the global default when it inherits, or none. */
export function effectiveGeoRule(host: Host, look: Lookups): { rule: GeoRule; from: 'host' | 'global' } | null {
  if (host.geoMode === 'off') return null;
  if (host.geoMode === 'inherit') {
    const g = look.geoDefault?.();
    return g && g.mode !== 'off' ? { rule: g, from: 'global' } : null;
  }
  return { rule: { mode: host.geoMode, countries: host.geoCountries, lan: host.geoLan, unknown: host.geoUnknown }, from: 'host' };
}

export const geoCheck: Check = {
  name: 'geo',
  run(ctx, look) {
    const country = look.country(ctx.target.clientIp);
    ctx.country = country;
    const shown = country ?? 'unknown';
    const host = ctx.host;
    const applied = host ? effectiveGeoRule(host, look) : null;
    if (!applied) return cont(`no country rule (${shown})`);
    const { rule, from } = applied;
    const tag = from === 'global' ? ' (global rule)' : '';
    if (country === 'LAN') return rule.lan === 'allow' ? cont(`LAN allowed${tag}`) : deny('geo_lan_denied', `LAN${tag}`);
    if (country === null) return rule.unknown === 'allow' ? cont(`unknown country allowed${tag}`) : deny('geo_unknown_denied', `unknown${tag}`);
    const listed = rule.countries.includes(country);
    if (rule.mode === 'allow') return listed ? cont(`${shown} allowed${tag}`) : deny('geo_not_allowed', `${shown}${tag}`);
    return listed ? deny('geo_denied', `${shown}${tag}`) : cont(`${shown} not denied${tag}`);
  },
};
