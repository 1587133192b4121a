import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostDefaults, type Host } from '@argos/shared/repos/hosts';
import type { GeoRule, Lookups } from '../lookups.ts';
import type { DecisionContext } from '../verdict.ts';
import { geoCheck } from './geo.ts';

const host = (patch: Partial<Host>): Host => ({ ...hostDefaults('app.example.com', ['http://127.0.0.1:9']), id: 1, rules: [], createdAt: 0, updatedAt: 0, ...patch });
const OFF: GeoRule = { mode: 'off', countries: [], lan: 'allow', unknown: 'allow' };

function run(h: Host | null, country: string | null, global: GeoRule = OFF) {
  const ctx = { target: { clientIp: '192.0.2.1' }, host: h, policy: null, rule: null, identity: null, country: null } as unknown as DecisionContext;
  const look = { country: () => country, geoDefault: () => global } as unknown as Lookups;
  const out = geoCheck.run(ctx, look) as { decided?: { kind: string; reason: string }; note?: string };
  return { verdict: out.decided?.reason ?? 'continue', note: out.note ?? '', country: ctx.country };
}

const allowDE: Partial<Host> = { geoMode: 'allow', geoCountries: ['DE'] };
const denyCN: Partial<Host> = { geoMode: 'deny', geoCountries: ['CN', 'RU'] };
const globalAllowFR: GeoRule = { mode: 'allow', countries: ['FR'], lan: 'allow', unknown: 'deny' };

const table: { name: string; host: Partial<Host> | null; country: string | null; global?: GeoRule; want: string; note?: RegExp }[] = [
  { name: 'no rule: continue, but the country is still traced', host: { geoMode: 'off' }, country: 'US', want: 'continue', note: /no country rule \(US\)/ },
  { name: 'allow-list hit', host: allowDE, country: 'DE', want: 'continue' },
  { name: 'allow-list miss', host: allowDE, country: 'US', want: 'geo_not_allowed' },
  { name: 'deny-list hit', host: denyCN, country: 'RU', want: 'geo_denied' },
  { name: 'deny-list miss', host: denyCN, country: 'DE', want: 'continue' },
  { name: 'LAN allowed by default (the operator at home is never locked out)', host: allowDE, country: 'LAN', want: 'continue' },
  { name: 'LAN denied when the host says so', host: { ...allowDE, geoLan: 'deny' }, country: 'LAN', want: 'geo_lan_denied' },
  { name: 'unknown allowed by default', host: allowDE, country: null, want: 'continue', note: /unknown/ },
  { name: 'unknown denied when the host says so', host: { ...allowDE, geoUnknown: 'deny' }, country: null, want: 'geo_unknown_denied' },
  { name: 'inherit + global off → no rule', host: { geoMode: 'inherit' }, country: 'US', want: 'continue', note: /no country rule/ },
  { name: 'inherit + global allow-list miss → deny, trace says global', host: { geoMode: 'inherit' }, country: 'US', global: globalAllowFR, want: 'geo_not_allowed', note: /global rule/ },
  { name: 'inherit + global allow-list hit', host: { geoMode: 'inherit' }, country: 'FR', global: globalAllowFR, want: 'continue' },
  { name: 'inherit + global unknown deny', host: { geoMode: 'inherit' }, country: null, global: globalAllowFR, want: 'geo_unknown_denied' },
  { name: 'host off ignores the global rule', host: { geoMode: 'off' }, country: 'US', global: globalAllowFR, want: 'continue' },
  { name: 'host rule wins over the global rule', host: allowDE, country: 'FR', global: globalAllowFR, want: 'geo_not_allowed' },
  { name: 'unknown host: no rule here (host policy refuses it next)', host: null, country: 'US', global: globalAllowFR, want: 'continue' },
];

for (const c of table) {
  test(`geo: ${c.name}`, () => {
    const r = run(c.host ? host(c.host) : null, c.country, c.global);
    assert.equal(r.verdict, c.want, r.note);
    assert.equal(r.country, c.country, 'the country used is in the decision context');
    if (c.note) assert.match(r.note, c.note);
  });
}
