/**
 * The second-factor step, in one place for the portal, the panel, both SSO step-ups and re-authentication:
 * a TOTP code (replay-protected) or a recovery code (single use). Attempts are serialised per client and per
 * username and counted before the next one may start, the challenge's tries are reserved before the check, and
 * failures count per client and per user across clients, so parallel bursts and distributed guessing get no more
 * codes than the limits allow.
 */
import type { Database } from './db/sqlite.ts';
import type { Vault } from './crypto.ts';
import type { Ban, Regulator } from './regulation.ts';
import { consumeRecoveryCode, consumeTotp, looksLikeRecoveryCode } from './totp.ts';

export const MAX_CODE_TRIES = 5;

export type SecondFactorResult =
  | { kind: 'ok'; via: 'totp' | 'recovery_code' }
  | { kind: 'failed'; via: 'totp' | 'recovery_code'; exhausted: boolean; ban: Ban | null }
  | { kind: 'blocked'; retryAfterS: number };

export interface SecondFactorDeps {
  db: Database;
  vault: Vault;
  regulator: Regulator;
}

/** Checks a code for a user; `challenge.tries` is the pending sign-in's counter (shared by its requests). */
export async function checkSecondFactor(
  deps: SecondFactorDeps,
  a: { userId: number; username: string; ip: string; code: string; now: number; challenge?: { tries: number } },
): Promise<SecondFactorResult> {
  const attempt = deps.regulator.begin(a.ip, a.username, true);
  if (!attempt.ok) return { kind: 'blocked', retryAfterS: attempt.retryAfterS };
  try {
    const code = a.code.trim();
    const via = looksLikeRecoveryCode(code) && !/^\d{6}$/.test(code) ? 'recovery_code' : 'totp';
    if (a.challenge) {
      if (a.challenge.tries >= MAX_CODE_TRIES) return { kind: 'failed', via, exhausted: true, ban: null };
      a.challenge.tries += 1; // reserved before the check: a parallel request sees it
    }
    const ok = via === 'recovery_code' ? await consumeRecoveryCode(deps.db, a.userId, code, a.now) : await consumeTotp(deps.db, deps.vault, a.userId, code.replace(/\s/g, ''), a.now);
    if (ok) {
      deps.regulator.succeed(a.ip, a.username);
      return { kind: 'ok', via };
    }
    const ban = deps.regulator.failSecondFactor(a.ip, a.username);
    return { kind: 'failed', via, exhausted: !!a.challenge && a.challenge.tries >= MAX_CODE_TRIES, ban };
  } finally {
    attempt.done();
  }
}
