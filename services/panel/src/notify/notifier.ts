/**
 * The notifier: tails the audit log by id (its cursor lives in the `meta` table), maps audit actions to
 * notification events, folds bursts into digests, and delivers through the channels from a bounded queue with
 * retries and exponential backoff. Every delivery outcome lands in the history table.
 *
 * Nothing on a request path ever waits for it: the audit log is the only input, `enqueue` never blocks (a full
 * queue drops and counts), and a dead SMTP relay only makes the background worker retry and then give up.
 *
 * Throttle, per event: the first entry of a kind opens a group that gathers for `notify.group_wait` (so a burst of
 * 1,000 bans is one digest, a lone ban one message); after a message, entries of that kind are held for
 * `notify.throttle` and then sent as one digest.
 */
import type { Database } from '@argos/shared/db/sqlite';
import type { Logger } from '@argos/shared/log';
import type { SettingsMap } from '@argos/shared/settings';
import { eventDef, eventForAction, LOGIN_ACTIONS, type NotifyEventKey } from '@argos/shared/notify/events';
import { insertDelivery, type Delivery, type DeliveryOutcome } from '@argos/shared/repos/notifications';
import { CHANNELS, errorText, type Channel, type ChannelName } from './channels.ts';
import { digestKey, digestMessage, singleMessage, testMessage, type Message, type NotifyItem } from './messages.ts';

export const CURSOR_KEY = 'notify.audit_cursor';

export interface NotifierOptions {
  pollMs: number;
  /** Audit entries read per poll. */
  batch: number;
  /** Messages waiting or in delivery, all channels together; more are dropped. */
  queueMax: number;
  attempts: number;
  /** First retry delay; doubles each attempt. */
  backoffMs: number;
  groupWaitMs: () => number;
  throttleMs: () => number;
  /** Drops are written to the history as one row per channel per this interval (a flood never floods the writer). */
  dropFlushMs: number;
}

export interface NotifierDeps {
  db: Database;
  log: Logger;
  settings: () => SettingsMap;
  channels: Record<ChannelName, Channel>;
  /** Country of an address (ISO code or LAN), for the new-country event; absent = that event is off. */
  country?: (ip: string) => string | null;
  now?: () => number;
  /** Called for every recorded outcome (metrics). */
  onOutcome?: (channel: ChannelName, outcome: DeliveryOutcome) => void;
  opts?: Partial<NotifierOptions>;
}

interface Job {
  channel: ChannelName;
  message: Message;
}

interface Group {
  event: NotifyEventKey;
  phase: 'gathering' | 'holding';
  since: number;
  count: number;
  /** The latest few entries (for the message). */
  items: NotifyItem[];
  top: Map<string, number>;
  timer: NodeJS.Timeout | null;
}

const KEEP_ITEMS = 20;
const MAX_TOP_KEYS = 1000;

export class Notifier {
  readonly opts: NotifierOptions;
  private cursor = 0;
  private restoreCounter: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<number> | null = null;
  private stopped = false;
  private readonly queue: Job[] = [];
  private readonly busy = new Set<ChannelName>();
  private readonly groups = new Map<NotifyEventKey, Group>();
  private readonly sleeps = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  private readonly pendingWrites = new Set<Promise<unknown>>();
  private readonly drops = new Map<ChannelName, { count: number; last: string }>();
  private dropTimer: NodeJS.Timeout | null = null;
  /** Totals since start, by channel and outcome. */
  readonly totals: Record<ChannelName, Record<DeliveryOutcome, number>> = {
    smtp: { sent: 0, failed: 0, throttled: 0, dropped: 0 },
    webhook: { sent: 0, failed: 0, throttled: 0, dropped: 0 },
  };
  dropped = 0;
  processed = 0;

  constructor(private readonly deps: NotifierDeps) {
    const s = () => deps.settings();
    this.opts = {
      pollMs: 1000,
      batch: 2000,
      queueMax: 100,
      attempts: 3,
      backoffMs: 2000,
      dropFlushMs: 5000,
      groupWaitMs: () => s()['notify.group_wait'] * 1000,
      throttleMs: () => s()['notify.throttle'] * 1000,
      ...deps.opts,
    };
  }

  private now(): number {
    return this.deps.now ? this.deps.now() : Date.now();
  }

  /** Messages waiting or being delivered. */
  get depth(): number {
    return this.queue.length + this.busy.size;
  }

  /** Loads the cursor (first run: the end of the audit log, so history is not replayed) and starts polling. */
  async start(): Promise<void> {
    const { db } = this.deps;
    const saved = await db.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [CURSOR_KEY]);
    if (saved && Number.isSafeInteger(Number(saved.value))) this.cursor = Number(saved.value);
    else {
      this.cursor = (await db.get<{ id: number | null }>('SELECT max(id) AS id FROM audit_log'))?.id ?? 0;
      await this.saveCursor();
    }
    this.restoreCounter = await this.readRestoreCounter();
    const tick = () => {
      if (this.stopped) return;
      this.poll()
        .catch((err) => this.deps.log.error({ err }, 'notifier poll failed'))
        .then((n) => {
          if (!this.stopped) this.timer = setTimeout(tick, n === this.opts.batch ? 0 : this.opts.pollMs);
          this.timer?.unref();
        });
    };
    this.timer = setTimeout(tick, this.opts.pollMs);
    this.timer.unref();
  }

  /** Stops polling and timers; a delivery in progress is abandoned at its next retry. Pending history writes finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const g of this.groups.values()) if (g.timer) clearTimeout(g.timer);
    if (this.dropTimer) clearTimeout(this.dropTimer);
    this.flushDrops();
    for (const s of this.sleeps) {
      clearTimeout(s.timer);
      s.resolve();
    }
    await this.polling?.catch(() => undefined);
    await Promise.allSettled([...this.pendingWrites]);
  }

  /** Reads and handles the audit entries after the cursor; returns how many. */
  poll(): Promise<number> {
    if (this.polling) return this.polling;
    this.polling = this.pollOnce().finally(() => (this.polling = null));
    return this.polling;
  }

  private async readRestoreCounter(): Promise<number> {
    return (await this.deps.db.get<{ counter: number }>("SELECT counter FROM changes WHERE topic = 'restore'"))?.counter ?? 0;
  }

  private async pollOnce(): Promise<number> {
    const { db } = this.deps;
    // A restore replaced the audit log (ids may go back): continue from the restore's own entry.
    const rc = await this.readRestoreCounter();
    if (this.restoreCounter !== null && rc !== this.restoreCounter) {
      const r = await db.get<{ id: number }>("SELECT id FROM audit_log WHERE action = 'backup.restore' ORDER BY id DESC LIMIT 1");
      this.cursor = r ? r.id - 1 : ((await db.get<{ id: number | null }>('SELECT max(id) AS id FROM audit_log'))?.id ?? 0);
      this.deps.log.info({ cursor: this.cursor }, 'notifier: database restored, audit cursor moved');
    }
    this.restoreCounter = rc;
    const rows = await db.all<{ id: number; ts: number; actor: string; action: string; target: string; ip: string | null; details: string }>(
      'SELECT id, ts, actor, action, target, ip, details FROM audit_log WHERE id > ? ORDER BY id LIMIT ?',
      [this.cursor, this.opts.batch],
    );
    for (const r of rows) {
      let details: Record<string, unknown> = {};
      try {
        const d = JSON.parse(r.details) as unknown;
        if (d && typeof d === 'object' && !Array.isArray(d)) details = d as Record<string, unknown>;
      } catch {
        /* keep {} */
      }
      const item: NotifyItem = { id: r.id, ts: r.ts, action: r.action, actor: r.actor, target: r.target, ip: r.ip, details };
      try {
        await this.handle(item);
      } catch (err) {
        this.deps.log.error({ err, audit: r.id }, 'notifier could not handle an audit entry');
      }
      this.cursor = r.id;
      this.processed++;
    }
    if (rows.length) await this.saveCursor();
    return rows.length;
  }

  private saveCursor(): Promise<unknown> {
    return this.deps.db.write((tx) =>
      tx.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [CURSOR_KEY, String(this.cursor)]),
    );
  }

  /** The channels that take an event now (configured and with the event switched on). */
  channelsFor(event: string): ChannelName[] {
    const s = this.deps.settings();
    return CHANNELS.filter((c) => {
      const list = c === 'smtp' ? s['notify.email_events'] : s['notify.webhook_events'];
      return list.includes(event) && this.deps.channels[c].configured(s);
    });
  }

  private async handle(item: NotifyItem): Promise<void> {
    const event = eventForAction(item.action);
    if (event && this.channelsFor(event).length) this.collect(event, item);
    if ((LOGIN_ACTIONS as readonly string[]).includes(item.action) && this.deps.country) await this.checkCountry(item);
  }

  /**
   * Remembers the sign-in's country for the user; raises `new_country` when the user has signed in before and
   * never from this country. The first time a user is seen, their earlier sign-ins in the audit log count too.
   */
  private async checkCountry(item: NotifyItem): Promise<void> {
    const { db } = this.deps;
    const lookup = this.deps.country!;
    if (!item.target || !item.ip) return;
    const country = lookup(item.ip);
    if (!country) return;
    const known = (await db.all<{ country: string }>('SELECT country FROM login_countries WHERE username = ?', [item.target])).map((r) => r.country);
    let earlier = known;
    if (!known.length) {
      const prev = await db.all<{ ip: string }>(
        "SELECT ip FROM audit_log WHERE action IN ('portal.login.success', 'panel.login.success') AND target = ? AND id < ? AND ip IS NOT NULL ORDER BY id DESC LIMIT 500",
        [item.target, item.id],
      );
      earlier = [...new Set(prev.map((p) => lookup(p.ip)).filter((c): c is string => !!c))];
    }
    const upsert = 'INSERT INTO login_countries (username, country, first_seen, last_seen) VALUES (?, ?, ?, ?) ON CONFLICT (username, country) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)';
    await db.write(async (tx) => {
      for (const c of known.length ? [] : earlier) await tx.run(upsert, [item.target, c, item.ts, item.ts]);
      await tx.run(upsert, [item.target, country, item.ts, item.ts]);
    });
    if (earlier.length && !earlier.includes(country) && this.channelsFor('new_country').length) {
      this.collect('new_country', { ...item, details: { ...item.details, country, earlier: [...earlier].sort() } });
    }
  }

  /** Adds an entry to its event's group: opens one (gathering), or joins the gathering or holding one. */
  private collect(event: NotifyEventKey, item: NotifyItem): void {
    let g = this.groups.get(event);
    if (!g) {
      g = { event, phase: 'gathering', since: this.now(), count: 0, items: [], top: new Map(), timer: null };
      this.groups.set(event, g);
      const group = g;
      g.timer = setTimeout(() => this.flush(group), this.opts.groupWaitMs());
      g.timer.unref();
    } else if (g.phase === 'holding' && g.count === 0) {
      // The first entry held back by the throttle: say so once per window.
      for (const c of this.channelsFor(event)) {
        this.record({ channel: c, event, outcome: 'throttled', subject: `${eventDef(event)?.title ?? event}: more events held, sent as one digest at the end of the throttle window`, events: 1, attempts: 0, error: null });
      }
    }
    g.count++;
    g.items.push(item);
    if (g.items.length > KEEP_ITEMS) g.items.shift();
    const key = digestKey(event, item);
    if (g.top.has(key) || g.top.size < MAX_TOP_KEYS) g.top.set(key, (g.top.get(key) ?? 0) + 1);
  }

  /** Sends what a group gathered (one message or a digest), then holds the event for the throttle window. */
  private flush(g: Group): void {
    if (this.stopped) return;
    if (g.count > 0) {
      const now = this.now();
      const message = g.count === 1 ? singleMessage(g.event, g.items[0]!) : digestMessage(g.event, g.items, g.count, g.since, now, g.top);
      for (const c of this.channelsFor(g.event)) this.enqueue(c, message);
      Object.assign(g, { phase: 'holding', since: now, count: 0, items: [], top: new Map() });
      g.timer = setTimeout(() => this.flush(g), this.opts.throttleMs());
      g.timer.unref();
    } else {
      this.groups.delete(g.event);
    }
  }

  /** Queues a message for a channel without ever waiting; false (dropped and counted) when the queue is full. */
  enqueue(channel: ChannelName, message: Message): boolean {
    if (this.depth >= this.opts.queueMax) {
      this.dropped++;
      this.totals[channel].dropped++;
      this.deps.onOutcome?.(channel, 'dropped');
      const d = this.drops.get(channel) ?? { count: 0, last: '' };
      this.drops.set(channel, { count: d.count + 1, last: message.summary });
      this.dropTimer ??= setTimeout(() => this.flushDrops(), this.opts.dropFlushMs);
      return false;
    }
    this.queue.push({ channel, message });
    this.pump();
    return true;
  }

  /** One history row per channel for the drops since the last one. */
  private flushDrops(): void {
    this.dropTimer = null;
    for (const [channel, d] of this.drops) {
      this.write({ channel, event: 'dropped', outcome: 'dropped', subject: `${d.count} notification(s) dropped, the queue was full (last: ${d.last})`, events: d.count, attempts: 0, error: 'notification queue full' });
    }
    this.drops.clear();
  }

  private pump(): void {
    for (const c of CHANNELS) {
      if (this.busy.has(c) || this.stopped) continue;
      const i = this.queue.findIndex((j) => j.channel === c);
      if (i < 0) continue;
      const [job] = this.queue.splice(i, 1);
      this.busy.add(c);
      void this.deliver(job!).finally(() => {
        this.busy.delete(c);
        this.pump();
      });
    }
  }

  private async deliver(job: Job): Promise<void> {
    const channel = this.deps.channels[job.channel];
    let lastError = '';
    for (let attempt = 1; attempt <= this.opts.attempts; attempt++) {
      if (this.stopped) return;
      try {
        await channel.send(job.message, this.deps.settings());
        this.record({ channel: job.channel, event: job.message.event, outcome: 'sent', subject: job.message.summary, events: job.message.events, attempts: attempt, error: null });
        return;
      } catch (err) {
        lastError = errorText(err);
        this.deps.log.warn({ channel: job.channel, attempt, err: lastError }, 'notification delivery failed');
        if (attempt < this.opts.attempts) await this.sleep(this.opts.backoffMs * 2 ** (attempt - 1));
      }
    }
    if (this.stopped) return;
    this.record({ channel: job.channel, event: job.message.event, outcome: 'failed', subject: job.message.summary, events: job.message.events, attempts: this.opts.attempts, error: lastError });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const s = { timer: setTimeout(() => (this.sleeps.delete(s), resolve()), ms), resolve };
      s.timer.unref();
      this.sleeps.add(s);
    });
  }

  /** Counts an outcome and writes its history row in the background (never awaited by the caller). */
  private record(d: Omit<Delivery, 'ts'>): void {
    this.totals[d.channel as ChannelName][d.outcome]++;
    this.deps.onOutcome?.(d.channel as ChannelName, d.outcome);
    this.write(d);
  }

  private write(d: Omit<Delivery, 'ts'>): void {
    const p = this.deps.db
      .write((tx) => insertDelivery(tx, { ...d, ts: this.now() }))
      .catch((err) => this.deps.log.error({ err }, 'could not record a notification delivery'))
      .finally(() => this.pendingWrites.delete(p));
    this.pendingWrites.add(p);
  }
}

/**
 * "Send test": one attempt through one channel, now, recorded in the history like any delivery.
 * Used by the panel's buttons and `argos notify test`.
 */
export async function sendTest(db: Database, channel: Channel, settings: SettingsMap, now = Date.now()): Promise<{ ok: true } | { ok: false; error: string }> {
  const message = testMessage(channel.name, now);
  let result: { ok: true } | { ok: false; error: string };
  if (!channel.configured(settings)) {
    result = { ok: false, error: channel.name === 'smtp' ? 'e-mail is not set up: smtp.host, smtp.from and smtp.to are needed' : 'the webhook is not set up: webhook.url is empty' };
  } else {
    try {
      await channel.send(message, settings);
      result = { ok: true };
    } catch (err) {
      result = { ok: false, error: errorText(err) };
    }
  }
  await db.write((tx) =>
    insertDelivery(tx, { ts: now, channel: channel.name, event: 'test', outcome: result.ok ? 'sent' : 'failed', subject: message.summary, events: 0, attempts: 1, error: result.ok ? null : result.error }),
  );
  return result;
}
