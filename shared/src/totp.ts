/**
 * TOTP (RFC 6238: SHA-1, 6 digits, 30 s, ±1 step) with replay protection, and recovery codes.
 * Seeds are stored encrypted (Vault, AAD users/<id>/totp_secret). A code is accepted only for a time step
 * later than the last one the user used, checked and recorded in one IMMEDIATE transaction, so a code
 * cannot be used twice even by two concurrent requests. Recovery codes are random, stored as SHA-256,
 * and consumed by a conditional UPDATE so exactly one of two simultaneous uses wins.
 */
import { randomBytes } from 'node:crypto';
import * as OTPAuth from 'otpauth';
import type { Database, Tx } from './db/sqlite.ts';
import type { Vault } from './crypto.ts';
import { hashToken } from './crypto.ts';

export const TOTP_PERIOD = 30;
const totpLoc = (userId: number) => ({ table: 'users', row: userId, column: 'totp_secret' });

export function newTotpSecret(): string {
  return new OTPAuth.Secret({ size: 20 }).base32;
}

export function totpFor(secretBase32: string, label = 'user', issuer = 'Argos'): OTPAuth.TOTP {
  return new OTPAuth.TOTP({ issuer, label, algorithm: 'SHA1', digits: 6, period: TOTP_PERIOD, secret: OTPAuth.Secret.fromBase32(secretBase32) });
}

export function otpauthUri(secretBase32: string, username: string, issuer = 'Argos'): string {
  return totpFor(secretBase32, username, issuer).toString();
}

/** The time step a code belongs to (within ±1 step of now), or null. */
export function matchStep(secretBase32: string, code: string, nowMs: number): number | null {
  if (!/^\d{6}$/.test(code)) return null;
  const delta = totpFor(secretBase32).validate({ token: code, timestamp: nowMs, window: 1 });
  if (delta === null) return null;
  return Math.floor(nowMs / 1000 / TOTP_PERIOD) + delta;
}

export function encryptTotpSecret(vault: Vault, userId: number, secret: string): string {
  return vault.encrypt(secret, totpLoc(userId));
}

export function decryptTotpSecret(vault: Vault, userId: number, stored: string): string {
  return vault.decrypt(stored, totpLoc(userId));
}

/**
 * Verifies a TOTP code for a user and records its step, atomically. Returns false for a wrong code,
 * a user without TOTP, or a replay of a step already used.
 */
export async function consumeTotp(db: Database, vault: Vault, userId: number, code: string, nowMs = Date.now()): Promise<boolean> {
  return db.write(async (tx) => {
    const row = await tx.get<{ totp_secret: string | null; totp_last_step: number }>('SELECT totp_secret, totp_last_step FROM users WHERE id = ?', [userId]);
    if (!row?.totp_secret) return false;
    const step = matchStep(decryptTotpSecret(vault, userId, row.totp_secret), code, nowMs);
    if (step === null || step <= row.totp_last_step) return false;
    await tx.run('UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?', [step, userId, step]);
    return true;
  });
}

const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

/** Ten fresh recovery codes like "k7mq-x3pa-9ve2" (about 69 bits each). */
export function newRecoveryCodes(n = 10): string[] {
  return Array.from({ length: n }, () => {
    const b = randomBytes(12);
    const chars = Array.from(b, (x) => RECOVERY_ALPHABET[x % RECOVERY_ALPHABET.length]).join('');
    return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8, 12)}`;
  });
}

export const normalizeRecoveryCode = (code: string) => code.trim().toLowerCase().replace(/[\s-]/g, '');
export const looksLikeRecoveryCode = (code: string) => /^[a-z0-9]{12}$/.test(normalizeRecoveryCode(code));

/** Replaces a user's recovery codes (inside the caller's transaction). */
export async function storeRecoveryCodes(tx: Tx, userId: number, codes: string[]): Promise<void> {
  await tx.run('DELETE FROM recovery_codes WHERE user_id = ?', [userId]);
  for (const c of codes) await tx.run('INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)', [userId, hashToken(normalizeRecoveryCode(c))]);
}

/** Uses a recovery code once. Exactly one of two concurrent uses of the same code succeeds. */
export async function consumeRecoveryCode(db: Database, userId: number, code: string, nowMs = Date.now()): Promise<boolean> {
  if (!looksLikeRecoveryCode(code)) return false;
  const r = await db.write((tx) =>
    tx.run('UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL', [nowMs, userId, hashToken(normalizeRecoveryCode(code))]),
  );
  return r.changes === 1;
}

export async function remainingRecoveryCodes(db: Database, userId: number): Promise<number> {
  return (await db.get<{ n: number }>('SELECT count(*) AS n FROM recovery_codes WHERE user_id = ? AND used_at IS NULL', [userId]))?.n ?? 0;
}
