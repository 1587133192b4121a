/**
 * Secret encryption and token helpers.
 *
 * Ciphertext format (final since the first commit):  `k<keyVersion>.<base64url(nonce[12] | ciphertext | tag[16])>`
 * AES-256-GCM under HKDF-SHA256(master key, purpose label), a fresh 96-bit nonce per value, and associated
 * data naming table, row and column, so a ciphertext copied to another row or column fails to decrypt.
 */
import { createCipheriv, createDecipheriv, createHmac, hash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

export interface SecretLocation {
  table: string;
  row: string | number;
  column: string;
}

export class DecryptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecryptError';
  }
}

/** Derives a 32-byte key for one purpose; different purposes never share key material. */
export function deriveKey(masterKey: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.from('argos-v1'), Buffer.from(purpose), 32));
}

const aadOf = (loc: SecretLocation) => Buffer.from(`argos:${loc.table}/${loc.row}/${loc.column}`);

/** Encrypts and decrypts secret columns under one master key at one key version. */
export class Vault {
  private readonly key: Buffer;
  constructor(
    masterKey: Buffer,
    readonly keyVersion = 1,
  ) {
    if (masterKey.length !== 32) throw new Error('master key must be 32 bytes');
    this.key = deriveKey(masterKey, 'secret-columns');
  }

  encrypt(plaintext: string, loc: SecretLocation): string {
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, nonce);
    c.setAAD(aadOf(loc));
    const body = Buffer.concat([nonce, c.update(plaintext, 'utf8'), c.final(), c.getAuthTag()]);
    return `k${this.keyVersion}.${body.toString('base64url')}`;
  }

  decrypt(stored: string, loc: SecretLocation): string {
    const m = /^k(\d+)\.([A-Za-z0-9_-]+)$/.exec(stored);
    if (!m) throw new DecryptError(`${loc.table}.${loc.column}: not an Argos ciphertext`);
    if (Number(m[1]) !== this.keyVersion) {
      throw new DecryptError(`${loc.table}.${loc.column}: encrypted under key version ${m[1]}, this process has version ${this.keyVersion}`);
    }
    const body = Buffer.from(m[2]!, 'base64url');
    if (body.length < 28) throw new DecryptError(`${loc.table}.${loc.column}: ciphertext truncated`);
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, body.subarray(0, 12));
      d.setAAD(aadOf(loc));
      d.setAuthTag(body.subarray(body.length - 16));
      return Buffer.concat([d.update(body.subarray(12, body.length - 16)), d.final()]).toString('utf8');
    } catch {
      throw new DecryptError(`${loc.table}.${loc.column}: authentication failed (wrong key, or value moved/tampered)`);
    }
  }
}

/** A random URL-safe token with `bytes` of entropy. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** SHA-256 hex of a token: what the database stores instead of the token. */
export function hashToken(token: string): string {
  // One-shot hash: no Hash object per call (it is on /verify's path for every session cookie).
  return hash('sha256', token, 'hex');
}

export function hmac(key: Buffer, data: string): string {
  return createHmac('sha256', key).update(data).digest('base64url');
}

/** Constant-time string comparison (false on length mismatch). */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

/** A random password for one-time use: 20 characters from an unambiguous alphabet. */
export function randomPassword(length = 20): string {
  const alphabet = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  const out: string[] = [];
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < 256 - (256 % alphabet.length) && out.length < length) out.push(alphabet[b % alphabet.length]!);
    }
  }
  return out.join('');
}
