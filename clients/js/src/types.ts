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
}

export type MessageState = 'unseen' | 'seen' | 'read' | 'archived';
export type ReceiptState = 'sent' | 'delivered' | 'read';

/** A message of a history or conversation page, with its state for this user. */
export interface HistoryEntry extends Message {
  state: MessageState;
  /** On messages this user sent in a conversation: how far it got. */
  receipt?: ReceiptState;
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
}

export interface Welcome {
  conn_id: string;
  user_id: string;
  node_id: string;
  heartbeat_ms: number;
  last_seq: number;
  last_all_seq: number;
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
}

export type WelcomeFrame = { type: 'welcome' } & Welcome;
export type ReplyFrame = { type: 'reply' } & Reply;
export type MessageFrame = { type: 'message' } & Message;
export type CountsFrame = { type: 'counts' } & Counts;
export type ReceiptFrame = { type: 'receipt' } & Receipt;
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
  | ReconnectFrame;

export type MarkState = 'seen' | 'read' | 'unread' | 'archived' | 'unarchived' | 'deleted';

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

export interface HistoryOptions extends PageOptions {
  category?: Category;
  state?: StateFilter;
}

export interface SendOptions {
  title?: string;
  data?: Record<string, unknown>;
  /** Idempotency key; the SDK makes one when absent so a retry after a reconnect stores nothing twice. */
  key?: string;
  /** RFC 3339 */
  expires_at?: string;
}

/** Client frames, by type, without `rid` (the SDK assigns it). */
export interface RequestFrames {
  sync: { type: 'sync'; since: number; since_all?: number; since_id?: string; since_all_id?: string };
  send: { type: 'send'; to: string; body: string } & SendOptions;
  ping: { type: 'ping' };
  mark: { type: 'mark'; state: MarkState } & MarkSelector;
  subscribe: { type: 'subscribe'; topic: string };
  unsubscribe: { type: 'unsubscribe'; topic: string };
  topics: { type: 'topics' };
  block: { type: 'block'; user: string };
  unblock: { type: 'unblock'; user: string };
  conversations: { type: 'conversations' } & PageOptions;
  conversation: { type: 'conversation'; peer: string } & PageOptions;
  history: { type: 'history' } & HistoryOptions;
}

export interface Page<T> {
  next: string | null;
  items: T[];
}

/** What each request's promise resolves with. */
export interface RequestResults {
  sync: { last_seq: number; last_all_seq?: number };
  send: { id: string; seq: number };
  ping: Record<string, never>;
  mark: { changed: number };
  subscribe: Record<string, never>;
  unsubscribe: Record<string, never>;
  topics: { topics: string[] };
  block: Record<string, never>;
  unblock: Record<string, never>;
  conversations: { conversations: ConversationSummary[]; next: string | null };
  conversation: { messages: HistoryEntry[]; next: string | null };
  history: { messages: HistoryEntry[]; next: string | null };
}

export type RequestType = keyof RequestFrames;
export type RequestFrame = RequestFrames[RequestType];

export type AckFrame = { type: 'ack'; seq: number; stream: StreamName };

/** Any frame a client sends (a request carries its `rid`). */
export type ClientFrame = (RequestFrame & { rid: Rid }) | AckFrame;
