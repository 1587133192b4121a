import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { emailAllowed, normalizeEmailDomain, parseEmail, type EmailAllowList } from './email.ts';

describe('parseEmail', () => {
  test('plain addresses parse; the domain is lowercased and IDNs become punycode', () => {
    assert.deepEqual(parseEmail('Alice.Liddell+tag@Example.COM'), {
      local: 'Alice.Liddell+tag',
      domain: 'example.com',
      address: 'Alice.Liddell+tag@example.com',
      key: 'alice.liddell+tag@example.com',
    });
    assert.equal(parseEmail('jo@bücher.de')?.domain, 'xn--bcher-kva.de');
    assert.equal(parseEmail('jo@xn--bcher-kva.de')?.domain, 'xn--bcher-kva.de');
    assert.equal(parseEmail('jo@BÜCHER.de')?.domain, 'xn--bcher-kva.de', 'plain Unicode case is just case');
  });

  const refused: Array<[string, unknown]> = [
    ['two @', 'x@evil@example.com'],
    ['quoted local part hiding an @', '"x@evil"@example.com'],
    ['comment', 'x(comment)@example.com'],
    ['trailing dot', 'x@example.com.'],
    ['leading dot in domain', 'x@.example.com'],
    ['double dot', 'x@example..com'],
    ['leading dot in local part', '.x@example.com'],
    ['double dot in local part', 'x..y@example.com'],
    ['space', 'x @example.com'],
    ['leading space', ' x@example.com'],
    ['newline', 'x@example.com\n'],
    ['NUL', 'x@example.com\u0000.evil.test'],
    ['IP literal', 'x@[127.0.0.1]'],
    ['dotted IP', 'x@127.0.0.1'],
    ['no domain dot', 'x@localhost'],
    ['empty local part', '@example.com'],
    ['empty domain', 'x@'],
    ['no @', 'example.com'],
    ['fullwidth letter folding to ASCII', 'x@ｅxample.com'],
    ['mathematical double-struck C (maps to c)', 'x@EXAMPLE.ℂOM'],
    ['soft hyphen (ignored by IDNA)', 'x@ex\u00adample.com'],
    ['zero-width joiner', 'x@exa\u200dmple.com'],
    ['decomposed (non-NFC) domain', 'x@bu\u0308cher.de'],
    ['non-ASCII local part', 'аlice@example.com'],
    ['percent-encoded', 'x@example.com%2eevil.test'],
    ['URL-ish', 'x@example.com/evil'],
    ['label too long', `x@${'a'.repeat(64)}.com`],
    ['label with leading hyphen', 'x@-example.com'],
    ['not a string', 42],
    ['null', null],
    ['too long', `${'a'.repeat(64)}@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(20)}.com`],
  ];
  for (const [what, input] of refused) {
    test(`refuses ${what}`, () => assert.equal(parseEmail(input), null, JSON.stringify(input)));
  }

  test('domains for allow-lists are normalised the same way', () => {
    assert.equal(normalizeEmailDomain('Example.COM'), 'example.com');
    assert.equal(normalizeEmailDomain('ｅxample.com'), null);
    assert.equal(normalizeEmailDomain('example.com.'), null);
  });
});

describe('emailAllowed', () => {
  const domains: EmailAllowList = { emails: [], domains: ['example.com'] };
  const ok = (raw: string, l: EmailAllowList = domains) => emailAllowed(parseEmail(raw), l);

  test('empty lists allow any address (and a missing one)', () => {
    assert.equal(emailAllowed(parseEmail('x@anything.test'), { emails: [], domains: [] }), true);
    assert.equal(emailAllowed(null, { emails: [], domains: [] }), true);
  });

  test('an allowed domain matches exactly, whatever the case of the address', () => {
    assert.equal(ok('alice@example.com'), true);
    assert.equal(ok('alice@EXAMPLE.COM'), true);
  });

  test('tricky forms never match the allowed domain', () => {
    for (const raw of [
      'x@evil@example.com',
      'x@example.com.evil.test',
      'x@EXAMPLE.COM.evil.test',
      'x@sub.example.com',
      'x@evilexample.com',
      'x@exаmple.com',
      'x@ｅxample.com',
      'x@example.com\u0000',
      'x@example.co',
    ]) {
      assert.equal(ok(raw), false, raw);
    }
    assert.equal(emailAllowed(null, domains), false, 'no address at all does not pass a non-empty list');
  });

  test('allowed addresses compare on lowercase local part and ASCII domain; entries are normalised too', () => {
    const l = { emails: ['Boss@Example.com', 'not an address'], domains: [] };
    assert.equal(ok('boss@example.com', l), true);
    assert.equal(ok('BOSS@EXAMPLE.COM', l), true);
    assert.equal(ok('boss2@example.com', l), false);
    assert.equal(ok('boss@example.com.evil.test', l), false);
  });

  test('an IDN domain in the list matches the punycode form of the address', () => {
    const l = { emails: [], domains: ['bücher.de'] };
    assert.equal(ok('jo@xn--bcher-kva.de', l), true);
    assert.equal(ok('jo@bücher.de', l), true);
    assert.equal(ok('jo@bucher.de', l), false);
  });
});
