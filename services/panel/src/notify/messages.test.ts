/** Message composition and the event map: no secret and no link ever leaves, digests rank, actions map to events. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventForAction } from '@argos/shared/notify/events';
import { parseSetting } from '@argos/shared/settings';
import { clean, digestKey, digestMessage, sanitize, singleMessage, type NotifyItem } from './messages.ts';
import { stackedBars, hbar, niceMax } from '../charts.ts';

const item = (o: Partial<NotifyItem> = {}): NotifyItem => ({ id: 1, ts: Date.UTC(2026, 0, 1), action: 'regulation.ban', actor: 'system', target: 'client:203.0.113.7', ip: '203.0.113.7', details: {}, ...o });

test('audit actions map to notification events (variants by prefix and suffix)', () => {
  const cases: Array<[string, string | null]> = [
    ['regulation.ban', 'ban'],
    ['panel.login.success', 'admin_login'],
    ['portal.login.success', null],
    ['user.2fa.reset', '2fa_reset'],
    ['user.2fa.enroll', null],
    ['token.create', 'token_created'],
    ['backup.create', 'backup_ok'],
    ['backup.create.failed', 'backup_failed'],
    ['backup.scheduled.failed', 'backup_failed'],
    ['backup.restore', 'restore'],
    ['geo.update.failed', 'geo_failed'],
    ['geo.update', null],
    ['crowdsec.unreachable', 'crowdsec'],
    ['crowdsec.stale', 'crowdsec'],
    ['crowdsec.recovered', 'crowdsec'],
    ['caddy.apply.failed', 'caddy'],
    ['caddy.start.failed', 'caddy'],
    ['caddy.drift', 'caddy'],
    ['caddy.apply', null],
    ['system.master_key.rotate', 'master_key'],
  ];
  for (const [action, event] of cases) assert.equal(eventForAction(action), event, action);
});

test('text headed outside loses links (host kept), control characters and secret fields', () => {
  assert.equal(clean('see https://auth.example.com/login?rd=https%3A%2F%2Fx and\r\nmore'), 'see <auth.example.com> and more');
  const s = sanitize({ password: 'p', nested: { api_token: 't', note: 'http://evil.test/x' }, list: ['ok'] });
  assert.deepEqual(s, { password: '[redacted]', nested: { api_token: '[redacted]', note: '<evil.test>' }, list: ['ok'] });
  const m = singleMessage('ban', item({ details: { until: Date.UTC(2026, 0, 1, 0, 15), strikes: 2, secret: 'SHH', reason: 'x https://a.test/?token=1' } }));
  assert.equal(m.summary, 'Login ban: 203.0.113.7 until 2026-01-01 00:15 UTC (strike 2)');
  assert.ok(!m.text.includes('SHH') && !JSON.stringify(m.details).includes('SHH'));
  assert.doesNotMatch(m.text + JSON.stringify(m.details), /https?:/);
  assert.match(m.text, /never contain links or secrets/);
  const pair = singleMessage('ban', item({ target: 'pair:alice|198.51.100.4' }));
  assert.match(pair.summary, /^Login ban: user alice from 198\.51\.100\.4/);
});

test('a digest counts, names the window and ranks the top addresses', () => {
  const items = Array.from({ length: 30 }, (_, i) => item({ id: i + 1, target: `client:198.51.100.${i % 3}` }));
  const top = new Map<string, number>();
  for (const it of items) top.set(digestKey('ban', it), (top.get(digestKey('ban', it)) ?? 0) + 1);
  top.set('198.51.100.0', 1200);
  const m = digestMessage('ban', items, 1234, 0, 5 * 60_000, top);
  assert.match(m.summary, /^1,234 login bans in the last 5 minutes: top ips 198\.51\.100\.0 \(1,200\), /);
  assert.equal(m.events, 1234);
  assert.deepEqual((m.details.top as Array<{ key: string }>).map((t) => t.key).slice(0, 1), ['198.51.100.0']);
});

test('list settings with known values refuse unknown events', () => {
  assert.deepEqual(parseSetting('notify.email_events', 'ban, restore,ban'), { ok: true, value: ['ban', 'restore'] });
  const bad = parseSetting('notify.webhook_events', 'ban,bogus');
  assert.equal(bad.ok, false);
  assert.equal(parseSetting('smtp.tls', 'ssl').ok, false);
  assert.deepEqual(parseSetting('smtp.to', 'a@example.test, b@example.test'), { ok: true, value: ['a@example.test', 'b@example.test'] });
});

test('charts: stacked bars scale to a round maximum and escape every text', () => {
  const c = stackedBars('Req <b>', [{ key: 'a', label: 'A&B', cls: 'k-ok', values: [1, 3, 0] }, { key: 'b', label: 'B', cls: 'k-err', values: [2, 0, 0] }], ['t0 <x>', 't1', 't2']);
  assert.equal(c.total, 6);
  assert.equal(c.max, 5);
  assert.doesNotMatch(c.svg, /<b>|<x>|style=/);
  assert.match(c.svg, /aria-label="Req &lt;b&gt;: 6 in total"/);
  assert.match(c.svg, /<title>t0 &lt;x&gt;\nA&amp;B: 1\nB: 2<\/title>/);
  assert.equal((c.svg.match(/<rect /g) ?? []).length, 3);
  assert.deepEqual(c.legend.map((l) => [l.label, l.total]), [['A&B', 4], ['B', 2]]);
  assert.match(hbar(5, 10), /width="50\.00"/);
  assert.deepEqual([niceMax(7), niceMax(12), niceMax(230), niceMax(1000)], [10, 20, 250, 1000]);
});
