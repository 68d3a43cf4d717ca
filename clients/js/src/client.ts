import { backoffDelay, type BackoffOptions } from './backoff.js';
import { jsonCodec, loadMsgpackCodec, type Codec, type MsgpackModule } from './codec.js';
import { Emitter } from './emitter.js';
import { inQuietHours } from './quiet.js';
import { defaultStorage, idKey, memoryStorage, ResumeStore, streamKey, type ResumeState, type StorageLike } from './store.js';
import { TabTransport, type Channel, type ChannelCtor, type LockManagerLike, type TabMsg } from './tabs.js';
import {
  SseTransport,
  WsTransport,
  type CloseInfo,
  type Transport,
  type TransportHandlers,
  type TransportKind,
} from './transport.js';
import type {
  Category,
  Changed,
  ClientFrame,
  Counts,
  ErrorCode,
  HistoryOptions,
  MarkSelector,
  MarkState,
  Message,
  PageOptions,
  Preferences,
  PreferencesPatch,
  QuietHours,
  Receipt,
  ReceiptState,
  Reply,
  RequestFrames,
  RequestResults,
  RequestType,
  Rid,
  SendOptions,
  Severity,
  ServerFrame,
  StreamName,
  TagFilter,
  Welcome,
} from './types.js';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface HeraldOptions {
  /**
   * The gateway's base URL (`https://herald.example.com`; default: this
   * page's origin), or several: each failed attempt moves to the next.
   */
  url?: string | string[];
  /** A JWT, or a function giving a fresh one before each connection. Leave out with cookie credentials. */
  token?: string | (() => string | Promise<string>);
  /** The user's id, to find the resume position before connecting; read from the token's `sub` when absent. */
  user?: string;
  /** The device name (`device` query parameter); default: one made per browser and kept in storage. */
  device?: string;
  /** Frame encoding on the WebSocket (default `json`). SSE is always JSON. */
  codec?: 'json' | 'msgpack';
  /** How to load `@msgpack/msgpack` (default: `import('@msgpack/msgpack')`). */
  msgpack?: () => Promise<MsgpackModule> | MsgpackModule;
  /** Transports to use, in order of preference (default `['ws', 'sse']`). */
  transports?: Array<'ws' | 'sse'>;
  /** WebSocket attempts in a row that fail before the SDK switches to SSE (default 2). */
  fallbackAfter?: number;
  /** While on SSE, how long before trying WebSocket again (default 30 000 ms; doubles on failure, up to 5 min). */
  upgradeAfterMs?: number;
  backoff?: BackoffOptions;
  /** Default timeout of a request (default 15 000 ms). */
  requestTimeoutMs?: number;
  /** Where resume positions are kept (default `localStorage`, or memory when unavailable); `null`: memory only. */
  storage?: StorageLike | null;
  /** Send cookies cross-origin (EventSource `withCredentials`, fetch `credentials: 'include'`). */
  withCredentials?: boolean;
  /** One connection for all tabs of the browser (Web Locks + BroadcastChannel); default false. */
  shareAcrossTabs?: boolean;
  /** Test seams and exotic runtimes. */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
  EventSource?: new (url: string, init?: EventSourceInit) => EventSource;
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
  BroadcastChannel?: ChannelCtor;
  locks?: LockManagerLike;
  random?: () => number;
}

export type MessageHandler = (m: Message) => void;

export interface ClientEvents {
  /** Every new connection (also after each reconnect). */
  welcome: (w: Welcome) => void;
  /** Every message, once, in seq order per stream. */
  message: MessageHandler;
  /** The messages of one category: `message:mailbox`, `message:announcement`… */
  [category: `message:${string}`]: MessageHandler;
  /**
   * The hook for a toast or a sound: every `message` except those the server
   * sent `silent` (the user's quiet hours) and, while the SDK knows the quiet
   * hours, a backlog or resume inside them; a critical message always notifies.
   */
  notify: MessageHandler;
  /**
   * Messages already delivered changed by the server's doing: `unsnoozed`
   * (back in the list, unread), `replaced` (a newer one of their collapse
   * group, `by`, stands for them: remove them). See `Inbox`.
   */
  changed: (c: Changed) => void;
  /** The user's preferences changed (on any tab or device), or were read for the first time. */
  preferences: (p: Preferences) => void;
  counts: (c: Counts) => void;
  /** A private message this user sent was delivered or read (forward moves only). */
  receipt: (r: Receipt) => void;
  state: (s: ConnectionState) => void;
  transport: (t: TransportKind) => void;
  /** The node is draining; the SDK reconnects after `after_ms`. */
  reconnect: (r: { after_ms: number }) => void;
  /**
   * The server's stream went back to `seq` (its store lost its newest
   * messages in a failover): messages you saw above `seq` stay valid, new
   * ones follow under those seqs.
   */
  reset: (r: { stream: StreamName; seq: number }) => void;
  /**
   * The server erased this user's data (`DELETE /v1/users/{id}`; the
   * connection closed with 4003): the SDK dropped the positions it kept for
   * the user; drop what you hold of them (an {@link Inbox} that follows this
   * client empties itself). The SDK reconnects as usual: a refused token
   * ends in `unauthorized`, an accepted one finds an empty inbox.
   */
  erased: () => void;
  /** The resume `sync` after a reconnect finished. */
  synced: (r: { last_seq: number; last_all_seq?: number }) => void;
  error: (e: Error) => void;
}

/** A refused request (`code` from the server's error, or `timeout`/`closed`/`network`). */
export class HeraldError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'HeraldError';
  }
}

interface Pending {
  frame: ClientFrame;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  sent: boolean;
  /** Belongs to one connection (sync, heartbeat ping): dropped, not resent, when it closes. */
  conn: boolean;
}

const RECEIPT_RANK: Record<ReceiptState, number> = { sent: 0, delivered: 1, read: 2 };
const MAX_RECEIPTS = 5000;
/**
 * Ids of the newest messages handed to the application: after a `reset`
 * the server writes again what followed the device's acknowledged cursor,
 * and these are recognised by id.
 */
const MAX_RECENT_IDS = 1000;
const STABLE_MS = 10_000;
/** Close codes that say the client did something wrong (protocol error, bad UTF-8, frame too big, rate limit): never reconnect at the first step's pace. */
const CLIENT_FAULT = new Set([1002, 1007, 1009, 4029]);
/** The close code of an erased user (`DELETE /v1/users/{id}` on the server). */
const ERASED = 4003;

/** Reads a JWT's `sub` without checking it (only to find the resume position early). */
export function tokenSubject(token: string): string | null {
  try {
    const part = token.split('.')[1];
    if (!part) return null;
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(b64 + '==='.slice((b64.length + 3) % 4)), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
    );
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === 'string' ? sub : null;
  } catch {
    return null;
  }
}

function wsBase(base: string): string {
  return base.replace(/^http/, 'ws');
}

function randomId(random: () => number): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return Array.from({ length: 4 }, () => Math.floor(random() * 0x100000000).toString(36)).join('');
}

/**
 * A connection to Herald that survives everything short of `close()`:
 * reconnects with backoff, resumes without gap or repeat, falls back to SSE.
 */
export class HeraldClient extends Emitter<ClientEvents> {
  /** The connection's state. */
  state: ConnectionState = 'idle';
  /** The transport in use (`tab`: another tab holds the connection). */
  transportKind: TransportKind | null = null;
  /** The latest unread numbers. */
  counts: Counts | null = null;
  /** The current connection's welcome. */
  welcome: Welcome | null = null;
  /** The user's preferences, once read (`preferences()`) or pushed. */
  currentPreferences: Preferences | null = null;
  /** The user, from the options, the token or the welcome. */
  user: string | null;
  readonly device: string;

  private readonly o: HeraldOptions;
  private readonly urls: string[];
  private urlIndex = 0;
  private readonly store: ResumeStore;
  private readonly random: () => number;
  private seqs: ResumeState = { inbox: 0, all: 0 };
  private readonly recentIds = new Set<string>();
  private acked: ResumeState = { inbox: 0, all: 0 };
  private loadedFor: string | null = null;
  private transport: Transport | null = null;
  private ready = false;
  private readonly pending = new Map<Rid, Pending>();
  private nextRid = 1;
  private attempt = 0;
  private mode: 'ws' | 'sse';
  private modeFails = 0;
  private upgradeFails = 0;
  private openedAt = 0;
  private lastFrameAt = 0;
  private reconnectAfter: number | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private upgradeTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private probe: WsTransport | null = null;
  private codec: Codec | null = null;
  private readonly receipts = new Map<string, ReceiptState>();
  /** The user's quiet hours as last known (kept in storage: a reload's backlog arrives before any reply). */
  private quiet: QuietHours | null = null;
  private started = false;
  private closed = false;
  private firstWelcome: Promise<Welcome>;
  private resolveFirst!: (w: Welcome) => void;
  private rejectFirst!: (e: Error) => void;
  // tab sharing
  private readonly tabId: string;
  private role: 'solo' | 'leader' | 'follower' = 'solo';
  private bus: Channel | null = null;
  private releaseLock: (() => void) | null = null;
  private readonly unlisten: Array<() => void> = [];

  constructor(options: HeraldOptions = {}) {
    super();
    this.o = options;
    this.random = options.random ?? Math.random;
    const loc = (globalThis as { location?: Location }).location;
    const urls = options.url == null ? [loc?.origin ?? ''] : Array.isArray(options.url) ? options.url : [options.url];
    this.urls = urls.map((u) => u.replace(/\/+$/, ''));
    this.store = new ResumeStore(options.storage === undefined ? defaultStorage() ?? memoryStorage() : options.storage ?? memoryStorage());
    const token = typeof options.token === 'string' ? options.token : null;
    this.user = options.user ?? (token ? tokenSubject(token) : null);
    let device = options.device ?? this.store.get('device');
    if (!device) {
      device = `web-${randomId(this.random).replace(/-/g, '').slice(0, 12)}`;
      this.store.set('device', device);
    }
    this.device = device;
    this.tabId = randomId(this.random);
    const t = this.transportsAllowed();
    this.mode = t[0] ?? 'ws';
    this.firstWelcome = new Promise((res, rej) => {
      this.resolveFirst = res;
      this.rejectFirst = rej;
    });
    this.firstWelcome.catch(() => {});
  }

  // ---------------------------------------------------------------- public

  /** Starts connecting; resolves with the first welcome. Safe to call twice. */
  connect(): Promise<Welcome> {
    if (this.closed) return Promise.reject(new HeraldError('closed', 'the client was closed'));
    if (!this.started) {
      this.started = true;
      this.watchBrowser();
      if (this.o.shareAcrossTabs && this.canShare()) this.startSharing();
      else void this.open();
    }
    return this.firstWelcome;
  }

  /** Closes for good: no reconnect; pending requests fail with `closed`. */
  close(): void {
    if (this.closed) return;
    this.flushAcks();
    this.closed = true;
    this.clearTimers();
    this.probe?.close();
    this.probe = null;
    const t = this.transport;
    this.transport = null;
    t?.close(1000, 'client closed');
    for (const [rid, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new HeraldError('closed', 'the client was closed'));
      this.pending.delete(rid);
    }
    this.bus?.close();
    this.bus = null;
    this.releaseLock?.();
    this.releaseLock = null;
    for (const u of this.unlisten) u();
    this.rejectFirst(new HeraldError('closed', 'the client was closed'));
    this.setState('closed');
  }

  /** Listens to the messages of one category. */
  onCategory(category: Category, fn: MessageHandler): () => void {
    return this.on(`message:${category}`, fn);
  }

  /** The highest seq processed in a stream (what a resume starts after). */
  lastSeq(stream: StreamName = 'inbox'): number {
    return this.seqs[streamKey(stream)];
  }

  /** The furthest receipt seen for a message this user sent. */
  receiptOf(id: string): ReceiptState | undefined {
    return this.receipts.get(id);
  }

  /** Unread count of a category, or the total. */
  unread(category?: Category): number {
    if (!this.counts) return 0;
    return category ? this.counts.unread[category] ?? 0 : this.counts.unread_total;
  }

  /** Unread count of a severity, from the last `counts` frame. */
  unreadBySeverity(severity: Severity): number {
    return this.counts?.unread_by_severity?.[severity] ?? 0;
  }

  /**
   * The unread messages with any of `filter.tags` and/or of
   * `filter.severity`, asked of the server (a scan there: call it when a
   * filter is shown, not on every `counts` event).
   */
  countUnread(filter: TagFilter): Promise<number> {
    return this.request({ type: 'counts', ...filter }).then((r) => r.unread);
  }

  /**
   * Any request, typed by its `type`; resolves with the reply's fields,
   * rejects with a {@link HeraldError}. Queued while disconnected.
   */
  request<T extends RequestType>(frame: RequestFrames[T] & { type: T }, opts: { timeoutMs?: number } = {}): Promise<RequestResults[T]> {
    return this.call(frame as RequestFrames[RequestType], opts.timeoutMs, false) as Promise<never>;
  }

  /**
   * A private message; resolves with the server's reply `{id, seq}` (its seq
   * in the receiver's inbox), or `{skipped: true}` when the receiver muted
   * private messages (nothing was stored).
   */
  send(to: string, body: string, opts: SendOptions = {}): Promise<RequestResults['send']> {
    const frame = { type: 'send' as const, to, body, ...opts, key: opts.key ?? randomId(this.random) };
    return this.request(frame).then((r) => {
      if (r.skipped) return { ...r, skipped: true };
      this.noteReceipt({ peer: to, id: r.id, state: 'sent', ts: new Date().toISOString() }, false);
      return { id: r.id, seq: r.seq };
    });
  }

  /**
   * Changes the read state of messages; resolves with how many really
   * changed. `opts.tags` / `opts.severity` narrow the selector: mark all
   * read with a tag is `mark('read', { all: true }, { tags: ['billing'] })`.
   */
  async mark(state: MarkState, selector: MarkSelector | string[] | string, opts: { until?: number } & TagFilter = {}): Promise<number> {
    const sel: MarkSelector = typeof selector === 'string' ? { ids: [selector] } : Array.isArray(selector) ? { ids: selector } : selector;
    const frame = { type: 'mark', state, ...sel } as RequestFrames['mark'];
    if (opts.until !== undefined) frame.until = opts.until;
    if (opts.tags !== undefined) frame.tags = opts.tags;
    if (opts.severity !== undefined) frame.severity = opts.severity;
    const r = await this.request(frame);
    return r.changed ?? 0;
  }

  /**
   * Snoozes messages until `until` (a `Date` or unix ms, at most a year
   * ahead): they leave the counts and the history at once and come back
   * unread then (a `changed` event with state `unsnoozed`). Marking them
   * read, archived or deleted before cancels the wake-up.
   */
  snooze(selector: MarkSelector | string[] | string, until: Date | number): Promise<number> {
    const ms = until instanceof Date ? until.getTime() : until;
    if (!Number.isFinite(ms)) return Promise.reject(new HeraldError('invalid_field', 'until: not a time'));
    return this.mark('snoozed', selector, { until: Math.round(ms) });
  }

  /**
   * Presses the action button `action` of message `id`: the message is
   * read now and every tab gets a `changed` event (`acted`). Only the
   * first act on a message counts: another rejects with `already_acted`.
   * Open the button's `url`, if any, yourself once this resolves.
   */
  async act(id: string, action: string): Promise<void> {
    await this.request({ type: 'act', message: id, action });
  }

  /** The user's preferences: every category, the topics set, the quiet hours. */
  preferences(): Promise<Preferences> {
    return this.request({ type: 'preferences' }).then((r) => this.notePreferences(r.preferences));
  }

  /**
   * Changes some preferences (the server merges `patch` into them) and
   * resolves with all of them. Every tab of the user gets a `preferences` event.
   */
  setPreferences(patch: PreferencesPatch): Promise<Preferences> {
    return this.request({ type: 'set_preferences', preferences: patch }).then((r) => this.notePreferences(r.preferences));
  }

  markRead(selector: MarkSelector | string[] | string): Promise<number> {
    return this.mark('read', selector);
  }
  markSeen(selector: MarkSelector | string[] | string): Promise<number> {
    return this.mark('seen', selector);
  }
  archive(selector: MarkSelector | string[] | string): Promise<number> {
    return this.mark('archived', selector);
  }
  unarchive(selector: MarkSelector | string[] | string): Promise<number> {
    return this.mark('unarchived', selector);
  }
  /** Marks the conversation with `peer` read (the peer gets `read` receipts). */
  markConversationRead(peer: string): Promise<number> {
    return this.mark('read', { peer });
  }

  history(opts: HistoryOptions = {}): Promise<RequestResults['history']> {
    return this.request({ type: 'history', ...opts });
  }
  conversations(opts: PageOptions = {}): Promise<RequestResults['conversations']> {
    return this.request({ type: 'conversations', ...opts });
  }
  conversation(peer: string, opts: PageOptions = {}): Promise<RequestResults['conversation']> {
    return this.request({ type: 'conversation', peer, ...opts }).then((r) => {
      for (const m of r.messages) if (m.receipt) this.noteReceipt({ peer, id: m.id, state: m.receipt, ts: m.ts }, false);
      return r;
    });
  }
  subscribe(topic: string): Promise<void> {
    return this.request({ type: 'subscribe', topic }).then(() => undefined);
  }
  unsubscribe(topic: string): Promise<void> {
    return this.request({ type: 'unsubscribe', topic }).then(() => undefined);
  }
  topics(): Promise<string[]> {
    return this.request({ type: 'topics' }).then((r) => r.topics);
  }
  block(user: string): Promise<void> {
    return this.request({ type: 'block', user }).then(() => undefined);
  }
  unblock(user: string): Promise<void> {
    return this.request({ type: 'unblock', user }).then(() => undefined);
  }
  /** Application-level round trip; resolves with the time it took, ms. */
  async ping(): Promise<number> {
    const t0 = Date.now();
    await this.request({ type: 'ping' });
    return Date.now() - t0;
  }

  /** Acknowledges now what was processed (done by itself shortly after each message). */
  ack(): void {
    this.flushAcks();
  }

  // ------------------------------------------------------------ connection

  private transportsAllowed(): Array<'ws' | 'sse'> {
    const g = globalThis as { WebSocket?: unknown; EventSource?: unknown };
    const list = this.o.transports ?? ['ws', 'sse'];
    return list.filter((t) => (t === 'ws' ? !!(this.o.WebSocket ?? g.WebSocket) : !!(this.o.EventSource ?? g.EventSource)));
  }

  private async token(): Promise<string | null> {
    const t = this.o.token;
    if (t == null) return null;
    return typeof t === 'function' ? await t() : t;
  }

  private async getCodec(): Promise<Codec> {
    if (this.codec) return this.codec;
    if (this.o.codec === 'msgpack') {
      try {
        this.codec = await loadMsgpackCodec(this.o.msgpack);
      } catch (err) {
        this.emit('error', new HeraldError('bad_request', `MessagePack unavailable, using JSON: ${String(err)}`));
        this.codec = jsonCodec;
      }
    } else {
      this.codec = jsonCodec;
    }
    return this.codec;
  }

  private loadPositions(user: string | null): void {
    if (!user || this.loadedFor === user) return;
    this.loadedFor = user;
    this.user = user;
    this.store.set('user', user);
    try {
      this.quiet = JSON.parse(this.store.get(`quiet:${user}`) ?? 'null') as QuietHours | null;
    } catch {
      this.quiet = null;
    }
    const s = this.store.load(user);
    this.seqs = s;
    this.acked = { inbox: 0, all: 0 };
  }

  private async open(): Promise<void> {
    this.reconnectTimer = null;
    if (this.closed || this.transport) return;
    this.setState(this.welcome || this.attempt > 0 ? 'reconnecting' : 'connecting');
    let token: string | null;
    try {
      token = await this.token();
    } catch (err) {
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
      return this.scheduleReconnect(backoffDelay(this.attempt++, this.o.backoff, this.random));
    }
    if (this.closed || this.transport) return;
    this.loadPositions(this.user ?? (token ? tokenSubject(token) : null) ?? this.store.get('user'));
    const base = this.urls[this.urlIndex % this.urls.length] ?? '';
    const allowed = this.transportsAllowed();
    if (!allowed.includes(this.mode)) this.mode = allowed[0] ?? 'ws';
    if (this.mode === 'ws') {
      const codec = await this.getCodec();
      if (this.closed || this.transport) return;
      this.transport = this.wsTransport(base, token, codec, false);
    } else {
      const t: SseTransport = new SseTransport(
        {
          base,
          token,
          device: this.device,
          since: this.seqs.inbox,
          sinceAll: this.seqs.all,
          withCredentials: !!this.o.withCredentials,
          EventSource: this.o.EventSource ?? (globalThis as unknown as { EventSource: NonNullable<HeraldOptions['EventSource']> }).EventSource,
          fetch: this.o.fetch ?? ((i, init) => fetch(i, init)),
        },
        this.handlers(() => t),
      );
      this.transport = t;
    }
  }

  private wsTransport(base: string, token: string | null, codec: Codec, probe: boolean): WsTransport {
    const q = new URLSearchParams({ device: this.device });
    if (token) q.set('token', token);
    const WS = this.o.WebSocket ?? (globalThis as unknown as { WebSocket: NonNullable<HeraldOptions['WebSocket']> }).WebSocket;
    const h = this.handlers(() => t);
    if (probe) {
      // Adopted as the transport when its welcome arrives.
      const onFrame = h.onFrame;
      h.onFrame = (f) => {
        if (this.probe === t && f.type === 'welcome') this.adoptProbe(t);
        onFrame(f);
      };
      const onClose = h.onClose;
      h.onClose = (info) => {
        if (this.probe === t) {
          this.probe = null;
          this.upgradeFails++;
          this.scheduleUpgrade();
        } else onClose(info);
      };
    }
    const t: WsTransport = new WsTransport(`${wsBase(base)}/ws?${q}`, codec, h, WS);
    return t;
  }

  private handlers(get: () => Transport): TransportHandlers & { onLeaderState(s: ConnectionState, k: TransportKind | null): void } {
    return {
      onFrame: (f) => {
        // A reply is matched by rid whatever carried it (an SSE request's
        // answer may land after the switch back to WebSocket).
        if (f.type === 'reply') return this.onReply(f);
        if (get() === this.transport) this.onFrame(f);
      },
      onClose: (info) => {
        if (get() === this.transport) this.onTransportClose(info);
      },
      onInterrupted: () => {
        if (get() === this.transport) {
          this.ready = false;
          this.setState('reconnecting');
        }
      },
      onErased: () => {
        if (get() === this.transport) this.onErased();
      },
      onReset: () => {
        if (get() === this.transport) {
          this.ready = false;
          for (const p of this.pending.values()) p.sent = false;
        }
      },
      onLeaderState: (s, k) => {
        if (get() === this.transport && s !== 'closed' && s !== 'idle') {
          this.setState(s);
          if (k) this.transportKind = k;
        }
      },
    };
  }

  private onTransportClose(info: CloseInfo): void {
    const kind = this.transport?.kind;
    const hadWelcome = this.ready || this.openedAt > 0;
    this.transport = null;
    this.ready = false;
    this.stopHeartbeat();
    this.cancelUpgrade();
    for (const [rid, p] of this.pending) {
      if (p.conn) {
        clearTimeout(p.timer);
        this.pending.delete(rid);
        p.reject(new HeraldError('closed', 'the connection closed'));
      } else p.sent = false;
    }
    if (info.code === ERASED) this.onErased();
    if (this.closed) return;
    if (kind === 'tab') return; // becoming leader: open() follows
    this.broadcastState('reconnecting', null);
    let delay: number;
    if (this.reconnectAfter != null || info.code === 1001) {
      // Draining node: go elsewhere after the delay it gave (or a short random one).
      delay = this.reconnectAfter ?? Math.round(this.random() * 1000);
      this.reconnectAfter = null;
      this.attempt = 0;
      this.urlIndex++;
    } else {
      if (!hadWelcome) {
        this.urlIndex++;
        if (++this.modeFails >= (this.o.fallbackAfter ?? 2)) this.switchMode();
      } else if (Date.now() - this.openedAt > STABLE_MS && !CLIENT_FAULT.has(info.code)) {
        this.attempt = 0;
      }
      delay = backoffDelay(this.attempt++, this.o.backoff, this.random);
      // Closed for asking too fast: come back later, slower.
      if (info.code === 4029) delay = Math.max(delay, 5000 + Math.round(this.random() * 5000));
    }
    this.openedAt = 0;
    this.scheduleReconnect(delay);
  }

  /** What this client kept of an erased user goes: positions (stored and in memory), recent ids, counts. */
  private onErased(): void {
    if (this.user && this.role !== 'follower') this.store.clear(this.user);
    this.seqs = { inbox: 0, all: 0 };
    this.acked = { inbox: 0, all: 0 };
    this.recentIds.clear();
    this.counts = null;
    if (this.role === 'leader' && this.bus) this.bus.postMessage({ k: 'erased' } satisfies TabMsg);
    this.emit('erased');
  }

  private switchMode(): void {
    const allowed = this.transportsAllowed();
    const other = allowed.find((t) => t !== this.mode);
    if (other) {
      this.mode = other;
      this.modeFails = 0;
    }
  }

  private scheduleReconnect(delay: number): void {
    if (this.closed) return;
    this.setState('reconnecting');
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  /** While on SSE: try a WebSocket now and then; adopt it when it says welcome. */
  private scheduleUpgrade(): void {
    this.cancelUpgrade();
    if (this.closed || this.transport?.kind !== 'sse' || !this.transportsAllowed().includes('ws')) return;
    const ceiling = Math.min(300_000, (this.o.upgradeAfterMs ?? 30_000) * 2 ** this.upgradeFails);
    const delay = Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
    this.upgradeTimer = setTimeout(() => void this.tryUpgrade(), delay);
  }

  private cancelUpgrade(): void {
    if (this.upgradeTimer) clearTimeout(this.upgradeTimer);
    this.upgradeTimer = null;
  }

  private async tryUpgrade(): Promise<void> {
    this.upgradeTimer = null;
    if (this.closed || this.probe || this.transport?.kind !== 'sse') return;
    let token: string | null;
    try {
      token = await this.token();
    } catch {
      this.upgradeFails++;
      return this.scheduleUpgrade();
    }
    const codec = await this.getCodec();
    if (this.closed || this.probe || this.transport?.kind !== 'sse') return;
    const base = this.urls[this.urlIndex % this.urls.length] ?? '';
    this.probe = this.wsTransport(base, token, codec, true);
  }

  private adoptProbe(t: WsTransport): void {
    this.probe = null;
    const old = this.transport;
    this.transport = t;
    this.ready = false;
    this.mode = 'ws';
    this.modeFails = 0;
    this.upgradeFails = 0;
    // Requests already posted over HTTP are answered there; the rest go on the WebSocket.
    old?.close(1000, 'switched to websocket');
  }

  // ---------------------------------------------------------------- frames

  private onFrame(f: ServerFrame): void {
    this.lastFrameAt = Date.now();
    // Every connection starts with a welcome; anything before it is stray.
    if (!this.ready && f.type !== 'welcome') return;
    switch (f.type) {
      case 'welcome':
        return this.onWelcome(f);
      case 'message':
        return this.onMessage(f);
      case 'counts': {
        const { type: _t, ...c } = f;
        this.counts = c;
        this.relay(f);
        this.emit('counts', c);
        return;
      }
      case 'receipt': {
        const { type: _t, ...r } = f;
        return this.noteReceipt(r, true);
      }
      case 'changed': {
        const { type: _t, ...c } = f;
        this.relay(f);
        this.emit('changed', c);
        return;
      }
      case 'preferences':
        this.notePreferences(f.preferences);
        return;
      case 'reset':
        return this.onReset(f);
      case 'reconnect':
        this.reconnectAfter = f.after_ms;
        this.relay(f);
        this.emit('reconnect', { after_ms: f.after_ms });
        return;
      default:
        return; // a frame type of a later version: ignore
    }
  }

  private onWelcome(f: ServerFrame & { type: 'welcome' }): void {
    const { type: _t, ...w } = f;
    const kind = this.transport!.kind;
    this.loadPositions(w.user_id);
    this.welcome = w;
    this.ready = true;
    this.modeFails = 0;
    this.openedAt = Date.now();
    this.acked = { inbox: 0, all: 0 };
    if (kind !== 'tab') this.relay(f);
    if (this.transportKind !== kind) {
      this.transportKind = kind;
      this.emit('transport', kind);
    }
    this.setState('open');
    if (kind === 'ws') {
      this.startHeartbeat(w.heartbeat_ms);
      if (this.seqs.inbox > 0 || this.seqs.all > 0) this.resync();
    } else if (kind === 'sse') {
      this.scheduleUpgrade();
    }
    for (const p of this.pending.values()) if (!p.sent) this.trySend(p);
    this.emit('welcome', w);
    this.resolveFirst(w);
  }

  /** After a (re)connect: ask for what came after our position, in order. */
  private resync(): void {
    const frame: RequestFrames['sync'] = { type: 'sync', since: this.seqs.inbox };
    if (this.seqs.inboxId) frame.since_id = this.seqs.inboxId;
    if (this.seqs.all > 0) frame.since_all = this.seqs.all;
    if (this.seqs.allId) frame.since_all_id = this.seqs.allId;
    this.call(frame, undefined, true).then(
      (r) => {
        this.emit('synced', r as RequestResults['sync']);
        this.scheduleAck();
      },
      (err: HeraldError) => {
        if (err.code === 'closed') return;
        this.emit('error', err);
        // Without the resume the connection could miss messages: start over.
        this.transport?.close(4000, 'resume failed');
      },
    );
  }

  private onMessage(f: ServerFrame & { type: 'message' }): void {
    const { type: _t, ...m } = f;
    const k = streamKey(m.stream);
    if (m.seq <= this.seqs[k]) return; // seen already (a resume overlaps what was written)
    this.seqs[k] = m.seq;
    this.seqs[idKey(k)] = m.id;
    if (this.recentIds.has(m.id)) return this.keepPosition(); // written again after a `reset`
    this.recentIds.add(m.id);
    if (this.recentIds.size > MAX_RECENT_IDS) this.recentIds.delete(this.recentIds.values().next().value as string);
    this.relay(f);
    this.emit('message', m);
    this.emit(`message:${m.category}`, m);
    if (m.critical || (!m.silent && !inQuietHours(this.quiet))) this.emit('notify', m);
    // Kept only once the application had it: a reload resumes after it.
    this.keepPosition();
  }

  private keepPosition(): void {
    if (this.role !== 'follower') {
      if (this.user) this.store.save(this.user, this.seqs);
      this.scheduleAck();
    }
  }

  private onReset(f: ServerFrame & { type: 'reset' }): void {
    const k = streamKey(f.stream);
    this.seqs[k] = f.seq;
    delete this.seqs[idKey(k)];
    if (this.role !== 'follower' && this.user) this.store.rewind(this.user, f.stream, f.seq);
    this.relay(f);
    this.emit('reset', { stream: f.stream, seq: f.seq });
  }

  private onReply(f: ServerFrame & { type: 'reply' }): void {
    if (f.rid == null) return;
    const p = this.pending.get(f.rid);
    if (!p) return;
    this.pending.delete(f.rid);
    clearTimeout(p.timer);
    if (f.ok) {
      const { type: _t, rid: _r, ok: _o, ...rest } = f;
      p.resolve(rest as Reply);
    } else {
      p.reject(new HeraldError(f.error?.code ?? 'internal', f.error?.message ?? 'request failed'));
    }
  }

  /** Keeps the newest preferences; tells the application (and the other tabs) when they differ. */
  private notePreferences(p: Preferences): Preferences {
    if (JSON.stringify(p) !== JSON.stringify(this.currentPreferences)) {
      this.currentPreferences = p;
      this.quiet = p.quiet_hours ?? null;
      if (this.user) this.store.set(`quiet:${this.user}`, JSON.stringify(this.quiet));
      this.relay({ type: 'preferences', preferences: p });
      this.emit('preferences', p);
    }
    return p;
  }

  private noteReceipt(r: Receipt, push: boolean): void {
    const prev = this.receipts.get(r.id);
    if (prev && RECEIPT_RANK[prev] >= RECEIPT_RANK[r.state]) return;
    this.receipts.delete(r.id);
    this.receipts.set(r.id, r.state);
    if (this.receipts.size > MAX_RECEIPTS) this.receipts.delete(this.receipts.keys().next().value as string);
    if (push) {
      this.relay({ type: 'receipt', ...r });
      this.emit('receipt', r);
    }
  }

  // -------------------------------------------------------------- requests

  private call(frame: RequestFrames[RequestType], timeoutMs: number | undefined, conn: boolean): Promise<Reply> {
    if (this.closed) return Promise.reject(new HeraldError('closed', 'the client was closed'));
    const rid = this.nextRid++;
    const full = { ...frame, rid } as ClientFrame;
    return new Promise<Reply>((resolve, reject) => {
      const p: Pending = {
        frame: full,
        resolve,
        reject,
        sent: false,
        conn,
        timer: setTimeout(() => {
          this.pending.delete(rid);
          reject(new HeraldError('timeout', `no reply to ${frame.type} within ${timeoutMs ?? this.o.requestTimeoutMs ?? 15_000} ms`));
        }, timeoutMs ?? this.o.requestTimeoutMs ?? 15_000),
      };
      this.pending.set(rid, p);
      this.trySend(p);
    });
  }

  private trySend(p: Pending): void {
    if (this.transport && this.ready && this.transport.send(p.frame)) p.sent = true;
  }

  private scheduleAck(): void {
    if (this.ackTimer || this.role === 'follower') return;
    this.ackTimer = setTimeout(() => this.flushAcks(), this.transport?.kind === 'sse' ? 250 : 50);
  }

  private flushAcks(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    const t = this.transport;
    if (!t || !this.ready || t.kind === 'tab') return;
    for (const stream of ['inbox', 'all'] as const) {
      const seq = this.seqs[stream];
      if (seq > this.acked[stream] && t.send({ type: 'ack', seq, stream })) this.acked[stream] = seq;
    }
  }

  // ------------------------------------------------------------- heartbeat

  private startHeartbeat(ms: number): void {
    this.stopHeartbeat();
    if (!(ms > 0)) return;
    this.heartbeatTimer = setInterval(() => {
      if (!this.ready || Date.now() - this.lastFrameAt < ms) return;
      const t = this.transport;
      // Silent for a whole interval: a ping must come back, or the connection is dead.
      this.call({ type: 'ping' }, Math.max(5000, ms / 2), true).catch((err: HeraldError) => {
        if (err.code === 'timeout' && this.transport === t) t?.close(4000, 'heartbeat timeout');
      });
    }, ms);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  private clearTimers(): void {
    this.stopHeartbeat();
    this.cancelUpgrade();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.reconnectTimer = this.ackTimer = null;
  }

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.broadcastState(s, this.transportKind);
    this.emit('state', s);
  }

  /** Back online or visible again: a pending reconnect need not wait out its backoff. */
  private watchBrowser(): void {
    const w = globalThis as unknown as { addEventListener?: typeof addEventListener; removeEventListener?: typeof removeEventListener };
    if (typeof w.addEventListener !== 'function') return;
    const now = () => {
      if (this.reconnectTimer && !this.transport) {
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = null;
        void this.open();
      }
    };
    const hide = () => this.flushAcks();
    w.addEventListener('online', now);
    w.addEventListener('pagehide', hide);
    this.unlisten.push(() => {
      w.removeEventListener?.('online', now);
      w.removeEventListener?.('pagehide', hide);
    });
  }

  // ----------------------------------------------------------- tab sharing

  private canShare(): boolean {
    const g = globalThis as { navigator?: { locks?: unknown }; BroadcastChannel?: unknown };
    return !!((this.o.locks ?? g.navigator?.locks) && (this.o.BroadcastChannel ?? g.BroadcastChannel));
  }

  private channelName(): string {
    return `herald:${this.user ?? this.store.get('user') ?? 'default'}:${this.device}`;
  }

  private startSharing(): void {
    const locks = (this.o.locks ?? (globalThis as unknown as { navigator: { locks: LockManagerLike } }).navigator.locks) as LockManagerLike;
    const BC = (this.o.BroadcastChannel ?? (globalThis as unknown as { BroadcastChannel: ChannelCtor }).BroadcastChannel) as ChannelCtor;
    const name = this.channelName();
    const lead = () =>
      new Promise<void>((release) => {
        if (this.closed) return release();
        this.releaseLock = release;
        this.becomeLeader(name, BC);
      });
    void locks.request(name, { ifAvailable: true }, (lock) => {
      if (lock) return lead();
      // Another tab leads: follow it, and take over when it goes.
      this.role = 'follower';
      const t: TabTransport = new TabTransport(name, this.tabId, this.handlers(() => t), BC);
      this.transport = t;
      this.setState('connecting');
      void locks.request(name, {}, lead);
      return undefined;
    });
  }

  private becomeLeader(name: string, BC: ChannelCtor): void {
    const follower = this.transport;
    this.role = 'leader';
    follower?.close(1000, 'taking over');
    this.transport = null;
    this.ready = false;
    const bus = new BC(name);
    this.bus = bus;
    bus.onmessage = (ev) => this.onTabMessage(ev.data as TabMsg);
    bus.postMessage({ k: 'leader', tab: this.tabId } satisfies TabMsg);
    void this.open();
  }

  private onTabMessage(m: TabMsg): void {
    if (!m || typeof m !== 'object' || !this.bus) return;
    if (m.k === 'hello') {
      if (this.welcome && this.ready) {
        this.bus.postMessage({ k: 'frame', to: m.tab, frame: { type: 'welcome', ...this.welcome } } satisfies TabMsg);
        if (this.counts) this.bus.postMessage({ k: 'frame', to: m.tab, frame: { type: 'counts', ...this.counts } } satisfies TabMsg);
        if (this.currentPreferences) {
          this.bus.postMessage({ k: 'frame', to: m.tab, frame: { type: 'preferences', preferences: this.currentPreferences } } satisfies TabMsg);
        }
      }
    } else if (m.k === 'req' && m.frame.type !== 'ack') {
      const { rid, ...frame } = m.frame as ClientFrame & { rid: Rid };
      const to = m.tab;
      if (frame.type === 'sync') return;
      this.call(frame as RequestFrames[RequestType], undefined, false).then(
        (r) => this.bus?.postMessage({ k: 'frame', to, frame: { type: 'reply', ...r, rid, ok: true } } satisfies TabMsg),
        (e: HeraldError) =>
          this.bus?.postMessage({
            k: 'frame',
            to,
            frame: { type: 'reply', rid, ok: false, error: { code: e.code ?? 'internal', message: e.message } },
          } satisfies TabMsg),
      );
    }
  }

  private relay(frame: ServerFrame): void {
    if (this.role === 'leader' && this.bus) this.bus.postMessage({ k: 'frame', frame } satisfies TabMsg);
  }

  private broadcastState(state: ConnectionState, transport: TransportKind | null): void {
    if (this.role === 'leader' && this.bus) this.bus.postMessage({ k: 'state', state, transport } satisfies TabMsg);
  }
}
