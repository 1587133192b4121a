import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { argosGroupName, groupsFromClaims, idpAssertedMfa, policyRefusal, readIdentity, trustedEmail } from './identity.ts';
import { isSsoMethod, ssoEnabled } from './mode.ts';
import { classifyError, issuerUrl, OidcRefused, OidcUnavailable, scopesOf } from './flow.ts';

const policy = { 'oidc.allowed_domains': [] as string[], 'oidc.allowed_emails': [] as string[], 'oidc.require_email_verified': true };
const ident = (claims: Record<string, unknown>) => readIdentity('https://idp.example.test', { sub: 'u1', ...claims }, { 'oidc.groups_claim': 'groups' });

describe('SSO identity from claims', () => {
  test('MFA is asserted by amr methods showing a second factor, or an acr naming multi-factor', () => {
    for (const amr of [['pwd', 'mfa'], ['otp'], ['hwk'], ['swk'], ['pwd', 'sms'], ['MFA']]) assert.equal(idpAssertedMfa({ amr }), true, amr.join());
    for (const amr of [['pwd'], ['kba'], [], ['user']]) assert.equal(idpAssertedMfa({ amr }), false, amr.join());
    assert.equal(idpAssertedMfa({ acr: 'http://schemas.openid.net/pape/policies/2007/06/multi-factor' }), true);
    assert.equal(idpAssertedMfa({ acr: 'urn:example:mfa' }), true);
    assert.equal(idpAssertedMfa({ acr: 'phrh' }), true);
    assert.equal(idpAssertedMfa({ acr: '1' }), false);
    assert.equal(idpAssertedMfa({ acr: 'goldmfabar' }), false);
    assert.equal(idpAssertedMfa({}), false);
  });

  test('group claims become Argos group names; an absent claim leaves groups alone', () => {
    assert.deepEqual(groupsFromClaims({ groups: ['Media Users', 'admins', 'ops/team', '  ', 42, 'admins'] }, 'groups'), ['admins', 'media-users', 'ops-team']);
    assert.deepEqual(groupsFromClaims({ roles: 'a b,c' }, 'roles'), ['a', 'b', 'c']);
    assert.equal(groupsFromClaims({}, 'groups'), null);
    assert.equal(groupsFromClaims({ groups: ['x'] }, ''), null);
    assert.equal(argosGroupName('---'), null);
  });

  test('email_verified must be true (or "true") for the address to count as verified', () => {
    assert.equal(ident({ email: 'a@example.test', email_verified: true }).emailVerified, true);
    assert.equal(ident({ email: 'a@example.test', email_verified: 'true' }).emailVerified, true);
    assert.equal(ident({ email: 'a@example.test', email_verified: 'yes' }).emailVerified, false);
    assert.equal(ident({ email: 'a@example.test' }).emailVerified, false);
  });

  test('policy: unverified addresses are refused when required; allow-lists need a parsable, listed address', () => {
    assert.equal(policyRefusal(ident({ email: 'a@example.test', email_verified: false }), policy), 'email_unverified');
    assert.equal(policyRefusal(ident({ email: 'a@example.test', email_verified: false }), { ...policy, 'oidc.require_email_verified': false }), null);
    assert.equal(policyRefusal(ident({}), policy), null, 'no address and no lists: the identity is (issuer, sub)');
    const lists = { ...policy, 'oidc.allowed_domains': ['example.test'] };
    assert.equal(policyRefusal(ident({ email: 'a@example.test', email_verified: true }), lists), null);
    assert.equal(policyRefusal(ident({}), lists), 'email_missing');
    assert.equal(policyRefusal(ident({ email: 'a@evil.test', email_verified: true }), lists), 'email_not_allowed');
    assert.equal(policyRefusal(ident({ email: 'a@evil@example.test', email_verified: true }), lists), 'email_invalid');
    assert.equal(policyRefusal(ident({ email: 'a@example.test.evil.test', email_verified: true }), lists), 'email_not_allowed');
  });

  test('only a verified address (or any, when verification is not required) is recorded', () => {
    assert.equal(trustedEmail(ident({ email: 'A@Example.TEST', email_verified: true }), policy), 'A@example.test');
    assert.equal(trustedEmail(ident({ email: 'a@example.test', email_verified: false }), policy), null);
    assert.equal(trustedEmail(ident({ email: 'a@example.test', email_verified: false }), { 'oidc.require_email_verified': false }), 'a@example.test');
  });
});

describe('SSO switches and client helpers', () => {
  test('ARGOS_OIDC_ENABLED=false wins over the setting; unset leaves it to the setting', () => {
    assert.equal(ssoEnabled({ oidcEnabledOverride: false }, { 'oidc.enabled': true }), false);
    assert.equal(ssoEnabled({ oidcEnabledOverride: null }, { 'oidc.enabled': true }), true);
    assert.equal(ssoEnabled({ oidcEnabledOverride: true }, { 'oidc.enabled': false }), false);
    assert.equal(isSsoMethod('oidc'), true);
    assert.equal(isSsoMethod('oidc+totp'), true);
    assert.equal(isSsoMethod('password'), false);
    assert.equal(isSsoMethod('oidcx'), false);
  });

  test('issuers must be https, or http on loopback only', () => {
    assert.equal(issuerUrl('https://accounts.google.com').href, 'https://accounts.google.com/');
    assert.equal(issuerUrl('http://127.0.0.1:9300').host, '127.0.0.1:9300');
    assert.throws(() => issuerUrl('http://idp.example.test'), OidcUnavailable);
    assert.throws(() => issuerUrl('https://user:pw@idp.example.test'), OidcUnavailable);
    assert.throws(() => issuerUrl('not a url'), OidcUnavailable);
  });

  test('scopes always include openid, once', () => {
    assert.equal(scopesOf('email profile'), 'openid email profile');
    assert.equal(scopesOf('openid  email,openid groups'), 'openid email groups');
  });

  test('network failures are unavailability, not refusals', () => {
    const net = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    assert.ok(classifyError(net) instanceof OidcUnavailable);
    assert.ok(classifyError(new Error('weird')) instanceof OidcRefused);
  });
});
