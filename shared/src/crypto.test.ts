import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vault, DecryptError } from './crypto.ts';

const key = Buffer.alloc(32, 1);
const loc = { table: 'secrets', row: 'smtp.password', column: 'value' };

test('a secret round-trips and carries the key version prefix; each encryption uses a fresh nonce', () => {
  const v = new Vault(key, 3);
  const a = v.encrypt('hunter2-very-secret', loc);
  const b = v.encrypt('hunter2-very-secret', loc);
  assert.match(a, /^k3\.[A-Za-z0-9_-]+$/);
  assert.notEqual(a, b);
  assert.ok(!a.includes('hunter2'));
  assert.equal(v.decrypt(a, loc), 'hunter2-very-secret');
});

test('a ciphertext moved to another row or column, or decrypted with another key, fails', () => {
  const v = new Vault(key);
  const c = v.encrypt('s3cret', loc);
  assert.throws(() => v.decrypt(c, { ...loc, row: 'oidc.client_secret' }), DecryptError);
  assert.throws(() => v.decrypt(c, { ...loc, column: 'other' }), DecryptError);
  assert.throws(() => new Vault(Buffer.alloc(32, 2)).decrypt(c, loc), DecryptError);
  assert.throws(() => new Vault(key, 2).decrypt(c, loc), /key version/);
  const tampered = c.slice(0, -2) + (c.endsWith('A') ? 'BB' : 'AA');
  assert.throws(() => v.decrypt(tampered, loc), DecryptError);
  assert.throws(() => v.decrypt('plaintext', loc), DecryptError);
});
