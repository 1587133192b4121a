/** Settings and secret commands: parse operator text, store, audit (secret values are never recorded). */
import type { Database } from '../db/sqlite.ts';
import type { Vault } from '../crypto.ts';
import { mutate, type Actor } from '../audit.ts';
import { isSettingKey, parseSetting, setSetting, type SettingKey } from '../settings.ts';
import { deleteSecret, isSecretName, setSecret, SECRET_NAMES } from '../secrets.ts';
import { CommandError } from './errors.ts';

export async function changeSetting(db: Database, actor: Actor, key: string, raw: string): Promise<unknown> {
  const parsed = parseSetting(key, raw);
  if (!parsed.ok) throw new CommandError(parsed.error, 400, { [key]: parsed.error });
  return mutate(db, actor, async (tx) => {
    const before = await setSetting(tx, key as SettingKey, parsed.value);
    return { result: parsed.value, audit: { action: 'settings.update', target: key, before, after: parsed.value } };
  });
}

/** Resets a setting to its default by deleting the stored value. */
export async function resetSetting(db: Database, actor: Actor, key: string): Promise<void> {
  if (!isSettingKey(key)) throw new CommandError(`unknown setting "${key}"`, 400);
  await mutate(db, actor, async (tx) => {
    await tx.run('DELETE FROM settings WHERE key = ?', [key]);
    return { result: undefined, audit: { action: 'settings.reset', target: key } };
  });
}

export async function storeSecret(db: Database, vault: Vault, actor: Actor, name: string, value: string): Promise<void> {
  if (!isSecretName(name)) throw new CommandError(`unknown secret "${name}" (known: ${SECRET_NAMES.join(', ')})`, 400);
  if (!value || value.length > 4096) throw new CommandError('secret must be 1-4096 characters', 400);
  await mutate(db, actor, async (tx) => {
    await setSecret(tx, vault, name, value);
    return { result: undefined, audit: { action: 'secret.set', target: name } };
  });
}

export async function clearSecret(db: Database, actor: Actor, name: string): Promise<void> {
  if (!isSecretName(name)) throw new CommandError(`unknown secret "${name}"`, 400);
  await mutate(db, actor, async (tx) => {
    await deleteSecret(tx, name);
    return { result: undefined, audit: { action: 'secret.delete', target: name } };
  });
}
