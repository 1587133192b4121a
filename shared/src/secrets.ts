/**
 * Named secrets (OIDC client secret, SMTP password, CrowdSec key, webhook token …), encrypted with the Vault.
 * Write-only for operators: callers can learn whether a secret is set, never read it back out of Argos.
 */
import type { Queryable } from './db/sqlite.ts';
import type { AuditedTx } from './audit.ts';
import type { Vault } from './crypto.ts';

export const SECRET_NAMES = ['oidc.client_secret', 'smtp.password', 'crowdsec.bouncer_key', 'crowdsec.machine_password', 'webhook.token'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];
export const isSecretName = (n: string): n is SecretName => (SECRET_NAMES as readonly string[]).includes(n);

const loc = (name: string) => ({ table: 'secrets', row: name, column: 'value' });

export async function setSecret(tx: AuditedTx, vault: Vault, name: SecretName, value: string, now = Date.now()): Promise<void> {
  await tx.run(
    'INSERT INTO secrets (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
    [name, vault.encrypt(value, loc(name)), now],
  );
}

export async function deleteSecret(tx: AuditedTx, name: SecretName): Promise<boolean> {
  return (await tx.run('DELETE FROM secrets WHERE name = ?', [name])).changes > 0;
}

/** Decrypts a secret for internal use (never for display). */
export async function readSecret(q: Queryable, vault: Vault, name: SecretName): Promise<string | null> {
  const row = await q.get<{ value: string }>('SELECT value FROM secrets WHERE name = ?', [name]);
  return row ? vault.decrypt(row.value, loc(name)) : null;
}

export async function secretStatus(q: Queryable): Promise<Array<{ name: SecretName; set: boolean; updatedAt: number | null }>> {
  const rows = await q.all<{ name: string; updated_at: number }>('SELECT name, updated_at FROM secrets');
  const by = new Map(rows.map((r) => [r.name, r.updated_at]));
  return SECRET_NAMES.map((name) => ({ name, set: by.has(name), updatedAt: by.get(name) ?? null }));
}
