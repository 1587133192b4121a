/**
 * Delivery channels: SMTP e-mail through nodemailer and a generic JSON webhook. Each reads its settings and its
 * secret at send time, so an operator's change applies to the next message. Errors are scrubbed of the secret
 * before they are reported (they end up in the delivery history).
 */
import nodemailer from 'nodemailer';
import type { Queryable } from '@argos/shared/db/sqlite';
import type { Vault } from '@argos/shared/crypto';
import { readSecret } from '@argos/shared/secrets';
import type { SettingsMap } from '@argos/shared/settings';
import type { Message } from './messages.ts';

export type ChannelName = 'smtp' | 'webhook';
export const CHANNELS: readonly ChannelName[] = ['smtp', 'webhook'];

export interface Channel {
  name: ChannelName;
  /** Whether the settings name somewhere to deliver to. */
  configured(s: SettingsMap): boolean;
  send(m: Message, s: SettingsMap): Promise<void>;
}

export const WEBHOOK_TIMEOUT_MS = 5000;

/** The error text worth showing, with any secret value cut out. */
export function errorText(err: unknown, secrets: readonly (string | null)[] = []): string {
  let text = err instanceof Error ? err.message : String(err);
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : '';
  if (cause && !text.includes(cause)) text = `${text}: ${cause}`;
  for (const s of secrets) if (s && s.length >= 4) text = text.split(s).join('[redacted]');
  return text.slice(0, 500);
}

export function smtpChannel(deps: { db: Queryable; vault: Vault }): Channel {
  return {
    name: 'smtp',
    configured: (s) => !!s['smtp.host'] && !!s['smtp.from'] && s['smtp.to'].length > 0,
    async send(m, s) {
      const user = s['smtp.username'];
      const pass = user ? await readSecret(deps.db, deps.vault, 'smtp.password') : null;
      const tls = s['smtp.tls'];
      const transport = nodemailer.createTransport({
        host: s['smtp.host'],
        port: s['smtp.port'],
        secure: tls === 'tls',
        requireTLS: tls === 'starttls',
        ignoreTLS: tls === 'none',
        auth: user ? { user, pass: pass ?? '' } : undefined,
        connectionTimeout: 5000,
        greetingTimeout: 5000,
        socketTimeout: 10_000,
        disableFileAccess: true,
        disableUrlAccess: true,
      });
      try {
        await transport.sendMail({
          from: s['smtp.from'],
          to: s['smtp.to'].join(', '),
          subject: `[Argos] ${m.summary}`,
          text: m.text,
          headers: { 'X-Argos-Event': m.event },
        });
      } catch (err) {
        // eslint-disable-next-line preserve-caught-error -- the cause could hold the secret; its text is scrubbed into the message
        throw new Error(errorText(err, [pass]));
      } finally {
        transport.close();
      }
    },
  };
}

export function webhookChannel(deps: { db: Queryable; vault: Vault; fetch?: typeof fetch }): Channel {
  return {
    name: 'webhook',
    configured: (s) => !!s['webhook.url'],
    async send(m, s) {
      const token = await readSecret(deps.db, deps.vault, 'webhook.token');
      const headers: Record<string, string> = { 'Content-Type': 'application/json', 'User-Agent': 'argos-notify' };
      if (token) headers.Authorization = `Bearer ${token}`;
      let res: Response;
      try {
        res = await (deps.fetch ?? fetch)(s['webhook.url'], {
          method: 'POST',
          headers,
          body: JSON.stringify({ event: m.event, time: m.time, summary: m.summary, details: m.details }),
          // A redirect could carry the bearer token elsewhere: refuse it.
          redirect: 'error',
          signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
        });
      } catch (err) {
        const timeout = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
        // eslint-disable-next-line preserve-caught-error -- the cause could hold the secret; its text is scrubbed into the message
        throw new Error(timeout ? `no answer within ${WEBHOOK_TIMEOUT_MS / 1000} s` : errorText(err, [token]));
      }
      await res.body?.cancel().catch(() => undefined);
      if (!res.ok) throw new Error(`the webhook answered HTTP ${res.status}`);
    },
  };
}
