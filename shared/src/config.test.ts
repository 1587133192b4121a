import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, defaultCookieDomain, loadConfig } from './config.ts';

const KEY = 'ab'.repeat(32);

test('a valid environment loads with the documented defaults', () => {
  const c = loadConfig({ ARGOS_MASTER_KEY: KEY }, '/srv/argos');
  assert.equal(c.dataDir, '/srv/argos/data');
  assert.equal(c.mode, 'lan');
  assert.deepEqual(c.panelListen, { host: '0.0.0.0', port: 8080 });
  assert.deepEqual(c.gatekeeperListen, { host: '127.0.0.1', port: 9091 });
  assert.equal(c.caddyHttpPort, 80);
  assert.equal(c.caddyHttpsPort, 443);
  assert.ok(Object.isFrozen(c));
  const b = loadConfig({ ARGOS_MASTER_KEY: KEY, ARGOS_MODE: 'behind_caddy', ARGOS_PANEL_DOMAIN: 'panel.example.com' });
  assert.deepEqual(b.panelListen, { host: '127.0.0.1', port: 8080 });
});

test('when the master key is missing or malformed, then startup lists it with a fix and never echoes the value', () => {
  for (const env of [{}, { ARGOS_MASTER_KEY: 'short' }, { ARGOS_MASTER_KEY: 'zz'.repeat(32) }]) {
    try {
      loadConfig(env);
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /ARGOS_MASTER_KEY/);
      assert.match(e.message, /openssl rand -hex 32/);
      if ('ARGOS_MASTER_KEY' in env) assert.ok(!e.message.includes(env.ARGOS_MASTER_KEY as string));
    }
  }
});

test('every problem is listed at once', () => {
  try {
    loadConfig({ ARGOS_MODE: 'cloud', ARGOS_PANEL_LISTEN: 'nope', ARGOS_TRUSTED_PROXIES: '10.0.0.0/8,banana', ARGOS_CADDY_HTTP_PORT: '99999', ARGOS_PORTAL_URL: 'ftp://x' });
    assert.fail('should throw');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    const names = ['ARGOS_MASTER_KEY', 'ARGOS_MODE', 'ARGOS_PANEL_LISTEN', 'ARGOS_TRUSTED_PROXIES', 'ARGOS_CADDY_HTTP_PORT', 'ARGOS_PORTAL_URL'];
    for (const n of names) assert.ok(e.problems.some((p) => p.startsWith(n)), n);
  }
});

test('the cookie domain defaults to the parent domain of the portal host', () => {
  assert.equal(defaultCookieDomain(new URL('https://auth.example.com')), 'example.com');
  assert.equal(defaultCookieDomain(new URL('https://auth.home.example.co.uk')), 'home.example.co.uk');
  assert.equal(defaultCookieDomain(new URL('http://127.0.0.1:8081')), '127.0.0.1');
});
