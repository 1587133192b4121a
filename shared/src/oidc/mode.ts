/**
 * Whether single sign-on is on, and which sessions came from it. Kept apart from the OIDC client so the
 * /verify path (which only asks "is this SSO session still allowed?") does not load openid-client.
 */
import type { Config } from '../config.ts';
import type { SettingsMap } from '../settings.ts';

/**
 * Whether SSO is on: the setting, unless ARGOS_OIDC_ENABLED=false (the break glass) says otherwise. When it is
 * off every SSO route answers 404 and sessions created through SSO stop passing.
 */
export function ssoEnabled(config: Pick<Config, 'oidcEnabledOverride'>, settings: Pick<SettingsMap, 'oidc.enabled'>): boolean {
  return config.oidcEnabledOverride !== false && settings['oidc.enabled'] === true;
}

/** SSO is on and has an issuer and client ID: the sign-in button is shown. */
export function ssoConfigured(
  config: Pick<Config, 'oidcEnabledOverride'>,
  settings: Pick<SettingsMap, 'oidc.enabled' | 'oidc.issuer' | 'oidc.client_id'>,
): boolean {
  return ssoEnabled(config, settings) && !!settings['oidc.issuer'] && !!settings['oidc.client_id'];
}

/** Whether a session was created through SSO, from its auth method (oidc, oidc+idp_mfa, oidc+totp, oidc+recovery_code). */
export const isSsoMethod = (authMethod: string): boolean => authMethod === 'oidc' || authMethod.startsWith('oidc+');
