/**
 * geo: per-host country allow-list or deny-list. Private, loopback, link-local and CGNAT addresses are
 * the pseudo-country LAN; addresses the database does not know are "unknown"; each has its own choice.
 */
import type { Check } from './check.ts';
import { cont, deny } from '../verdict.ts';

export const geoCheck: Check = {
  name: 'geo',
  run(ctx, look) {
    const host = ctx.host;
    if (!host || host.geoMode === 'off' || host.geoMode === 'inherit') return cont('no country rule');
    const country = look.country(ctx.target.clientIp);
    ctx.country = country;
    const shown = country ?? 'unknown';
    if (country === 'LAN') return host.geoLan === 'allow' ? cont('LAN allowed') : deny('geo_lan_denied', 'LAN');
    if (country === null) return host.geoUnknown === 'allow' ? cont('unknown country allowed') : deny('geo_unknown_denied', 'unknown');
    const listed = host.geoCountries.includes(country);
    if (host.geoMode === 'allow') return listed ? cont(`${shown} allowed`) : deny('geo_not_allowed', shown);
    return listed ? deny('geo_denied', shown) : cont(`${shown} not denied`);
  },
};
