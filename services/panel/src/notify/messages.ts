/**
 * What a notification says: one message per event, or one digest for a burst. Pure functions.
 *
 * The SMTP relay and the webhook receiver are outside Argos's trust boundary (threat model), so a message never
 * carries a secret or a link: details pass through the audit log's redact(), every URL is cut down to its host
 * name, control characters are removed, and the text tells the operator to open the panel themselves.
 */
import { redact } from '@argos/shared/audit';
import { eventDef } from '@argos/shared/notify/events';

/** One audit entry the notifier acts on. */
export interface NotifyItem {
  id: number;
  ts: number;
  action: string;
  actor: string;
  target: string;
  ip: string | null;
  details: Record<string, unknown>;
}

export interface Message {
  event: string;
  /** ISO time of the (latest) event. */
  time: string;
  /** One line; also the e-mail subject (after "[Argos] "). */
  summary: string;
  /** Plain-text body of the e-mail. */
  text: string;
  /** The webhook's `details`: sanitised, never a secret or a link. */
  details: Record<string, unknown>;
  /** Audit entries covered (a digest covers many). */
  events: number;
}

const URL_RE = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi;

/** Removes links (keeping the host name), control characters and excess length from text headed outside. */
export function clean(text: string, max = 300): string {
  const noLinks = text.replace(URL_RE, (u) => {
    try {
      return `<${new URL(u).hostname || 'link'}>`;
    } catch {
      return '<link>';
    }
  });
  const flat = noLinks.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** redact() plus clean() on every string, depth-limited. */
export function sanitize(value: unknown, depth = 0): unknown {
  const v = depth === 0 ? redact(value) : value;
  if (typeof v === 'string') return clean(v, 500);
  if (depth > 6 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.slice(0, 50).map((x) => sanitize(x, depth + 1));
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [clean(k, 60), sanitize(x, depth + 1)]));
}

const n = (x: number) => x.toLocaleString('en-US');
const iso = (ms: number) => new Date(ms).toISOString();
const utc = (ms: number) => `${iso(ms).slice(0, 16).replace('T', ' ')} UTC`;

/** The client address of a ban key (`client:<ip>` or `pair:<user>|<ip>`). */
export function banAddress(key: string): string {
  if (key.startsWith('client:')) return key.slice(7);
  if (key.startsWith('pair:')) return key.slice(key.indexOf('|') + 1);
  return key;
}

function str(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
}

/** The one-line summary of a single event. */
export function summarize(event: string, it: NotifyItem): string {
  const d = it.details;
  const from = it.ip ? ` from ${it.ip}` : '';
  switch (event) {
    case 'ban': {
      const until = typeof d.until === 'number' ? ` until ${utc(d.until)}` : '';
      const who = it.target.startsWith('pair:') ? `user ${it.target.slice(5, it.target.indexOf('|'))} from ${banAddress(it.target)}` : banAddress(it.target);
      return `Login ban: ${who}${until}${d.strikes ? ` (strike ${str(d.strikes)})` : ''}`;
    }
    case 'new_country':
      return `${it.target} signed in from ${str(d.country)} for the first time${from} (before: ${Array.isArray(d.earlier) ? d.earlier.join(', ') : '?'})`;
    case 'admin_login':
      return `Panel sign-in: ${it.target}${from}`;
    case '2fa_reset':
      return `Two-factor authentication of ${it.target} was reset by ${it.actor}`;
    case 'token_created':
      return `API token created: ${it.target} by ${it.actor}`;
    case 'backup_ok':
      return `Backup made: ${it.target}`;
    case 'backup_failed':
      return `Backup FAILED${d.error ? `: ${str(d.error)}` : ''}`;
    case 'geo_failed':
      return `Country database update failed${d.error ? `: ${str(d.error)}` : ''}`;
    case 'crowdsec':
      return it.action === 'crowdsec.recovered' || it.action === 'crowdsec.reachable'
        ? 'CrowdSec is reachable again'
        : `CrowdSec is unreachable: the last known decisions are enforced${d.error ? ` (${str(d.error)})` : ''}`;
    case 'caddy':
      return it.action === 'caddy.drift'
        ? "Caddy's running configuration differs from Argos's (drift)"
        : `Caddy refused the configuration (${it.action}); the previous one keeps running${d.error ? `: ${str(d.error)}` : ''}`;
    case 'master_key':
      return `The master key was rotated by ${it.actor}`;
    case 'restore':
      return `A backup was restored by ${it.actor}: ${it.target}`;
    default:
      return `${eventDef(event)?.title ?? event}: ${it.action} ${it.target}`;
  }
}

const FOOTER = 'Sent by Argos. Notifications never contain links or secrets: open the Argos panel yourself to look into it.';

function detailLines(d: Record<string, unknown>): string[] {
  return Object.entries(d)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
}

/** A message about one event. */
export function singleMessage(event: string, it: NotifyItem): Message {
  const details = sanitize({ ...it.details }) as Record<string, unknown>;
  const summary = clean(summarize(event, { ...it, details }), 200);
  const lines = [
    summary,
    '',
    `Event:  ${event} (${it.action})`,
    `Time:   ${iso(it.ts)}`,
    `Actor:  ${clean(it.actor, 100)}${it.ip ? ` (from ${it.ip})` : ''}`,
    `Target: ${clean(it.target, 200) || '—'}`,
  ];
  const dl = detailLines(details);
  if (dl.length) lines.push('Details:', ...dl);
  lines.push('', FOOTER);
  return {
    event,
    time: iso(it.ts),
    summary,
    text: lines.join('\n'),
    details: { action: it.action, actor: clean(it.actor, 100), target: clean(it.target, 200), ip: it.ip, audit_id: it.id, ...details },
    events: 1,
  };
}

/** A burst folded into one message: the count, the window, the top addresses or targets, the latest few. */
export function digestMessage(event: string, items: readonly NotifyItem[], total: number, sinceMs: number, nowMs: number, top: ReadonlyMap<string, number>): Message {
  const def = eventDef(event);
  const minutes = Math.max(1, Math.round((nowMs - sinceMs) / 60_000));
  const noun = event === 'ban' ? 'login bans' : `${(def?.title ?? event).toLowerCase()} events`;
  const summary = `${n(total)} ${noun} in the last ${minutes} minute${minutes === 1 ? '' : 's'}`;
  const ranked = [...top].sort((a, b) => b[1] - a[1]).slice(0, 10);
  const topLabel = event === 'ban' ? 'Top IPs' : 'Top targets';
  const latest = items.slice(-10).map((it) => `  ${utc(it.ts)}  ${clean(summarize(event, { ...it, details: sanitize(it.details) as Record<string, unknown> }), 160)}`);
  const lines = [summary + (ranked.length ? `: ${topLabel.toLowerCase()} ${ranked.slice(0, 3).map(([k, c]) => `${clean(k, 60)} (${n(c)})`).join(', ')}` : ''), ''];
  if (ranked.length) lines.push(`${topLabel}:`, ...ranked.map(([k, c]) => `  ${clean(k, 80).padEnd(40)} ${n(c)}`), '');
  lines.push('Latest:', ...latest, '', FOOTER);
  const last = items.at(-1);
  return {
    event,
    time: iso(last?.ts ?? nowMs),
    summary: clean(summary + (ranked.length ? `: ${topLabel.toLowerCase()} ${ranked.slice(0, 3).map(([k, c]) => `${k} (${n(c)})`).join(', ')}` : ''), 200),
    text: lines.join('\n'),
    details: { digest: true, count: total, window_minutes: minutes, top: ranked.map(([key, count]) => ({ key: clean(key, 80), count })), latest_audit_id: last?.id ?? null },
    events: total,
  };
}

/** The key a digest ranks by: the client address for bans, the target otherwise. */
export function digestKey(event: string, it: NotifyItem): string {
  return event === 'ban' ? banAddress(it.target) : it.target || it.action;
}

/** The message "Send test" delivers. */
export function testMessage(channel: string, nowMs: number): Message {
  const summary = `Test notification (${channel})`;
  return {
    event: 'test',
    time: iso(nowMs),
    summary,
    text: [`${summary}: if you can read this, Argos can reach you through this channel.`, '', FOOTER].join('\n'),
    details: { channel },
    events: 0,
  };
}
