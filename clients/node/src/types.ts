// HAND-WRITTEN for now: the request and answer bodies of the server API as
// docs/protocol.md describes them, copied from the gateway's Rust types
// (crates/herald-gateway/src/api.rs, crates/herald-protocol). They are to be
// replaced by types generated from docs/openapi.json (`npm run gen`) once
// that document is on main.

/** A built-in category, or one the operator configured. */
export type Category =
  | 'announcement'
  | 'remind'
  | 'resource_subscription'
  | 'resource_publish'
  | 'system'
  | 'mailbox'
  | (string & {});

export type Severity = 'low' | 'normal' | 'high' | 'critical';

/** An action button a message may carry (at most 3). */
export interface Action {
  id: string;
  label: string;
  url?: string;
}

/** `to`: exactly one of a list of users or everybody (an announcement). */
export type Recipients = { users: string[] } | { all: true };

/** The body of `POST /v1/messages`, and each item of a batch. */
export interface SendRequest {
  to: Recipients;
  category: Category;
  body: string;
  title?: string;
  data?: Record<string, unknown>;
  /** The sender shown to receivers (a user id or a system name). */
  from?: string;
  /**
   * 1–128 bytes. A retry with the same key within the idempotency window
   * (24 h by default) answers the first outcome and stores nothing. The
   * client fills one in when it is absent, so that its own retries are safe.
   */
  idempotency_key?: string;
  /** RFC 3339. */
  expires_at?: string;
  critical?: boolean;
  /** Unix ms: a scheduled send. */
  deliver_at?: number;
  group_key?: string;
  fallback_after_secs?: number;
  actions?: Action[];
  tags?: string[];
  severity?: Severity;
}

export interface StoredIn {
  stream: 'inbox' | 'all';
  user?: string;
  seq: number;
}

/** 202 of a send stored now. */
export interface SendResult {
  id: string;
  stored: StoredIn[];
  /** Receivers whose preferences kept the message out. */
  skipped: string[];
}

/** 202 of a send with `deliver_at`. */
export interface ScheduledResult {
  scheduled: string;
  deliver_at: number;
}

export type SendAnswer = SendResult | ScheduledResult;

export interface BatchResult {
  /** One per message, in request order. */
  results: SendAnswer[];
}

/** The body of `POST /v1/topics/{topic}/messages`. */
export interface PublishRequest {
  body: string;
  title?: string;
  data?: Record<string, unknown>;
  from?: string;
  category?: Category;
  idempotency_key?: string;
  expires_at?: string;
  group_key?: string;
  critical?: boolean;
  fallback_after_secs?: number;
  actions?: Action[];
  tags?: string[];
  severity?: Severity;
}

export interface PublishResult {
  job: string;
  subscribers: number;
}

export interface Job {
  id: string;
  topic: string;
  state: 'queued' | 'running' | 'done' | 'failed';
  total: number;
  done: number;
}

export interface ScheduledStatus {
  id: string;
  state: 'pending' | 'delivered' | 'cancelled';
  deliver_at: number;
}

export interface Connection {
  conn_id: string;
  user_id: string;
  node_id: string;
  device?: string;
  connected_at: string;
}

export interface UserPresence {
  user_id: string;
  online: boolean;
  connections: Connection[];
}

export interface OnlineUsers {
  online_users: number;
}

export type MessageState = 'unseen' | 'seen' | 'read' | 'archived' | 'snoozed';

/** A stored message as history, inbox and export return it. */
export interface Message {
  seq: number;
  stream: 'inbox' | 'all';
  id: string;
  category: Category;
  severity?: Severity;
  tags?: string[];
  from?: string;
  title?: string;
  body: string;
  data: Record<string, unknown>;
  /** RFC 3339. */
  ts: string;
  expires_at?: string;
  group_key?: string;
  collapsed?: number;
  replaces?: string;
  critical?: boolean;
  actions?: Action[];
  acted?: string;
}

/** A message of history: with the user's state of it. */
export interface HistoryEntry extends Message {
  state: MessageState;
  receipt?: 'sent' | 'delivered' | 'read';
  /** Snoozed: when it comes back (unix ms). */
  until?: number;
}

export interface HistoryPage {
  messages: HistoryEntry[];
  /** Pass as `before` for the next (older) page; null at the end. */
  next: string | number | null;
}

export interface HistoryQuery {
  category?: Category;
  state?: string;
  before?: string | number;
  limit?: number;
  snoozed?: boolean;
  tags?: string[];
  severity?: Severity;
}

export interface InboxPage {
  user_id: string;
  last_seq: number;
  messages: Message[];
}

export interface Counts {
  unread: Record<string, number>;
  unread_total: number;
  unseen_total: number;
  unread_by_severity: Record<Severity, number>;
}

export type MarkState = 'seen' | 'read' | 'unread' | 'archived' | 'unarchived' | 'deleted' | 'snoozed';

/** `POST /v1/users/{id}/mark`: a state and exactly one selector. */
export interface MarkRequest {
  state: MarkState;
  ids?: string[];
  up_to?: number | { stream: 'inbox' | 'all'; seq: number };
  category?: Category;
  all?: boolean;
  peer?: string;
  /** Snoozed until (unix ms). */
  until?: number;
  tags?: string[];
  severity?: Severity;
}

export interface Changed {
  changed: number;
}

export interface Acted {
  message: string;
  acted: string;
}

export interface Toggled {
  changed: boolean;
}

export interface SubscriberPage {
  topic: string;
  subscribers: string[];
  next: string | null;
  total: number;
}

export interface ConversationSummary {
  peer: string;
  last: HistoryEntry;
  unread: number;
}

export interface ConversationList {
  conversations: ConversationSummary[];
  next: string | number | null;
}

export interface Channels {
  in_app: boolean;
  fallback: boolean;
}

export interface QuietHours {
  /** An IANA zone, e.g. `Europe/Paris`. */
  tz: string;
  /** HH:MM */
  start: string;
  /** HH:MM */
  end: string;
}

export interface Preferences {
  categories: Record<string, Channels>;
  topics: Record<string, Channels>;
  quiet_hours: QuietHours | null;
}

export interface PreferencesPatch {
  categories?: Record<string, Partial<Channels>>;
  /** null removes the topic's setting. */
  topics?: Record<string, Partial<Channels> | null>;
  quiet_hours?: QuietHours | null;
}

export interface DeadWebhook {
  id: string;
  user: string;
  message: string;
  created_at: number;
  dead_at: number;
  attempts: number;
  last_error: string;
  event: unknown;
}

export interface DeadWebhookPage {
  events: DeadWebhook[];
  next?: string;
}

export interface UserExport {
  user: string;
  preferences: Preferences;
  topics: string[];
  blocked: string[];
  conversations: { peer: string; last_activity_us: number }[];
  delivered: number;
  scheduled: { id: string; deliver_at: number; message: Record<string, unknown> }[];
  webhooks: Record<string, unknown>[];
  messages: (Message & { state: string; until?: number })[];
}

export interface Erased {
  user_id: string;
  erased: Record<string, number>;
}
