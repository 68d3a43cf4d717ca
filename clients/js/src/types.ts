// Wire types of Herald protocol v1 (docs/protocol.md; the Rust definition is
// crates/herald-protocol). Field names are the wire names.

/** The six built-in categories; an operator may configure more. */
export type BuiltinCategory =
  | 'announcement'
  | 'remind'
  | 'resource_subscription'
  | 'resource_publish'
  | 'system'
  | 'mailbox';

/** A category name: a built-in one or one the operator configured. */
export type Category = BuiltinCategory | (string & {});

export const CATEGORIES: readonly BuiltinCategory[] = [
  'announcement',
  'remind',
  'resource_subscription',
  'resource_publish',
  'system',
  'mailbox',
];

/** `inbox`: the user's own messages; `all`: messages sent to everyone. */
export type StreamName = 'inbox' | 'all';

/** A request id chosen by the client. */
export type Rid = string | number;

export interface Message {
  seq: number;
  stream: StreamName;
  /** UUID. */
  id: string;
  category: Category;
  from?: string;
  title?: string;
  body: string;
  data: Record<string, unknown>;
  /** RFC 3339. */
  ts: string;
  expires_at?: string;
  /** Sent as one nobody may mute: ignores preferences and quiet hours (operator API only). */
  critical?: boolean;
  /**
   * Live, but inside the user's quiet hours: show it in the list, raise no
   * toast or sound. The SDK emits `notify` only for messages without it.
   */
  silent?: boolean;
  /** The collapse group it belongs to (a send's `group_key`). */
  group_key?: string;
  /** How many messages of its group it stands for (≥ 2): it replaced the group's unread one. */
  collapsed?: number;
  /** The id of the group's unread message it replaced (which left history and counts). */
  replaces?: string;
  /** Buttons the user may press, one of them, once (`client.act`). */
  actions?: Action[];
  /** The button this user pressed (its id): on history, a backlog and a sync; absent until they act. */
  acted?: string;
  /** Absent: `normal`. */
  severity?: Severity;
  /** The sender's labels, sorted; absent when none. */
  tags?: string[];
}

/** An action button: `id` is what `act` names; `url` (http or https only) is where to take the user after. */
export interface Action {
  id: string;
  label: string;
  url?: string;
}

/** How urgent a message is (`normal` unless the sender said otherwise). */
export type Severity = 'low' | 'normal' | 'high' | 'critical';

/**
 * Narrows history, marks and the `counts` request: messages with any of
 * `tags` (each 1–64 bytes of `[a-z0-9:_.-]`, at most 10) and of `severity`.
 */
export interface TagFilter {
  tags?: string[];
  severity?: Severity;
}

/**
 * `snoozed`: out of the list and the counts until its `until`
 * (`history({ snoozed: true })` lists those, each with `until`).
 */
export type MessageState = 'unseen' | 'seen' | 'read' | 'archived' | 'snoozed';
export type ReceiptState = 'sent' | 'delivered' | 'read';

/** A message of a history or conversation page, with its state for this user. */
export interface HistoryEntry extends Message {
  state: MessageState;
  /** On messages this user sent in a conversation: how far it got. */
  receipt?: ReceiptState;
  /** A snoozed message (a page of `history({ snoozed: true })`): when it comes back (unix ms). */
  until?: number;
}

export interface ConversationSummary {
  peer: string;
  last: HistoryEntry;
  unread: number;
}

export interface Counts {
  unread: Record<string, number>;
  unread_total: number;
  unseen_total: number;
  /** `unread_total` by severity (the four add up to it). */
  unread_by_severity: Record<Severity, number>;
}

export interface Welcome {
  conn_id: string;
  user_id: string;
  node_id: string;
  heartbeat_ms: number;
  last_seq: number;
  last_all_seq: number;
}

/** Whether messages of a category or topic reach this user, in the app and by the fallback (webhooks). */
export interface ChannelPreference {
  in_app: boolean;
  fallback: boolean;
}

/** A window without toasts or sounds, in the user's zone; it may cross midnight (`22:00`–`07:00`). */
export interface QuietHours {
  /** IANA zone, e.g. `Europe/Paris`. */
  tz: string;
  /** `HH:MM` */
  start: string;
  /** `HH:MM` */
  end: string;
}

/**
 * A user's preferences: every configured category (operator defaults where
 * the user set nothing), the topics the user set, and the quiet hours.
 */
export interface Preferences {
  categories: Record<string, ChannelPreference>;
  topics: Record<string, ChannelPreference>;
  quiet_hours: QuietHours | null;
}

/**
 * What `setPreferences` sends: only what changes; the server merges it.
 * A topic `null` is forgotten; `quiet_hours: null` removes them.
 */
export interface PreferencesPatch {
  categories?: Record<string, Partial<ChannelPreference>>;
  topics?: Record<string, Partial<ChannelPreference> | null>;
  quiet_hours?: QuietHours | null;
}

/** What a `changed` frame says happened to messages already delivered. */
export type ChangedState = 'unsnoozed' | 'replaced' | 'acted' | (string & {});

/**
 * Messages this user already has changed state by the server's doing:
 * `unsnoozed` (their snooze ended: unread again, back in the list),
 * `replaced` (a newer message of the same collapse group, `by`, stands for them).
 */
export interface Changed {
  ids: string[];
  state: ChangedState;
  /** With `replaced`: the id of the message that replaced them. */
  by?: string;
  /** With `acted`: the button pressed (on any tab or device; the message is read now). */
  action?: string;
}

export interface Receipt {
  peer: string;
  id: string;
  state: ReceiptState;
  ts: string;
}

export type ErrorCode =
  | 'bad_request'
  | 'unknown_type'
  | 'invalid_field'
  | 'unavailable'
  | 'unauthorized'
  | 'internal'
  | 'conflict'
  | 'blocked'
  | 'not_found'
  | 'rate_limited'
  /** An `act` on a message acted on before: the first act wins. */
  | 'already_acted'
  // client side
  | 'timeout'
  | 'closed'
  | 'network'
  | (string & {});

export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export interface Reply {
  rid: Rid | null;
  ok: boolean;
  error?: ErrorBody;
  id?: string;
  seq?: number;
  last_seq?: number;
  last_all_seq?: number;
  changed?: number;
  messages?: HistoryEntry[];
  conversations?: ConversationSummary[];
  topics?: string[];
  next?: string | null;
  preferences?: Preferences;
  /** On a private send: the receiver muted it (`in_app: false`); nothing was stored. */
  skipped?: boolean;
}

export type WelcomeFrame = { type: 'welcome' } & Welcome;
export type ReplyFrame = { type: 'reply' } & Reply;
export type MessageFrame = { type: 'message' } & Message;
export type CountsFrame = { type: 'counts' } & Counts;
export type ReceiptFrame = { type: 'receipt' } & Receipt;
export type ChangedFrame = { type: 'changed' } & Changed;
export interface PreferencesFrame {
  type: 'preferences';
  preferences: Preferences;
}
export interface ReconnectFrame {
  type: 'reconnect';
  after_ms: number;
}

/**
 * The server's copy of `stream` went back (its store lost the newest
 * messages, e.g. a Redis failover): `seq` is the position now; messages
 * after it follow and may include ones already seen (the SDK recognises
 * them by id).
 */
export interface ResetFrame {
  type: 'reset';
  stream: StreamName;
  seq: number;
}

export type ServerFrame =
  | WelcomeFrame
  | ResetFrame
  | ReplyFrame
  | MessageFrame
  | CountsFrame
  | ReceiptFrame
  | ChangedFrame
  | PreferencesFrame
  | ReconnectFrame;

export type MarkState = 'seen' | 'read' | 'unread' | 'archived' | 'unarchived' | 'deleted' | 'snoozed';

/** Exactly one selector. */
export type MarkSelector =
  | { ids: string[] }
  | { up_to: { stream: StreamName; seq: number } }
  | { category: Category }
  | { all: true }
  | { peer: string };

export type StateFilter = 'unread' | 'read' | 'archived';

export interface PageOptions {
  before?: string;
  limit?: number;
}

export interface HistoryOptions extends PageOptions, TagFilter {
  category?: Category;
  state?: StateFilter;
  /** `true`: the snoozed messages (left out otherwise). */
  snoozed?: boolean;
}

export interface SendOptions {
  title?: string;
  data?: Record<string, unknown>;
  /** Idempotency key; the SDK makes one when absent so a retry after a reconnect stores nothing twice. */
  key?: string;
  /** RFC 3339 */
  expires_at?: string;
  /** Collapse group (1–128 characters): replaces the receiver's unread message with the same key. */
  group_key?: string;
  tags?: string[];
  severity?: Severity;
}

/** Client frames, by type, without `rid` (the SDK assigns it). */
export interface RequestFrames {
  sync: { type: 'sync'; since: number; since_all?: number; since_id?: string; since_all_id?: string };
  send: { type: 'send'; to: string; body: string } & SendOptions;
  ping: { type: 'ping' };
  /** `until` (unix ms) goes with `state: 'snoozed'` only. */
  mark: { type: 'mark'; state: MarkState; until?: number } & MarkSelector & TagFilter;
  /** The unread messages of a filter (answered, never pushed). */
  counts: { type: 'counts' } & TagFilter;
  subscribe: { type: 'subscribe'; topic: string };
  unsubscribe: { type: 'unsubscribe'; topic: string };
  topics: { type: 'topics' };
  block: { type: 'block'; user: string };
  unblock: { type: 'unblock'; user: string };
  conversations: { type: 'conversations' } & PageOptions;
  conversation: { type: 'conversation'; peer: string } & PageOptions;
  history: { type: 'history' } & HistoryOptions;
  preferences: { type: 'preferences' };
  set_preferences: { type: 'set_preferences'; preferences: PreferencesPatch };
  act: { type: 'act'; message: string; action: string };
}

export interface Page<T> {
  next: string | null;
  items: T[];
}

/** What each request's promise resolves with. */
export interface RequestResults {
  sync: { last_seq: number; last_all_seq?: number };
  /** `skipped`: the receiver muted mailbox messages; nothing was stored (`id`, `seq` absent). */
  send: { id: string; seq: number; skipped?: boolean };
  ping: Record<string, never>;
  mark: { changed: number };
  counts: { unread: number };
  subscribe: Record<string, never>;
  unsubscribe: Record<string, never>;
  topics: { topics: string[] };
  block: Record<string, never>;
  unblock: Record<string, never>;
  conversations: { conversations: ConversationSummary[]; next: string | null };
  conversation: { messages: HistoryEntry[]; next: string | null };
  history: { messages: HistoryEntry[]; next: string | null };
  preferences: { preferences: Preferences };
  set_preferences: { preferences: Preferences };
  act: Record<string, never>;
}

export type RequestType = keyof RequestFrames;
export type RequestFrame = RequestFrames[RequestType];

export type AckFrame = { type: 'ack'; seq: number; stream: StreamName };

/** Any frame a client sends (a request carries its `rid`). */
export type ClientFrame = (RequestFrame & { rid: Rid }) | AckFrame;
