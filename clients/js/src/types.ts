// Wire types of Herald protocol v1 (docs/protocol.md), under the SDK's names.
//
// The wire types are generated from their Rust definition (crates/herald-protocol,
// ts-rs derives) into ./generated/: never edit those files. `make ts-types` rewrites
// them, and `cargo test --workspace --all-features` fails while they differ from what
// the Rust types generate. This file re-exports and composes them, and writes by hand
// only:
// - what ts-rs cannot say: the `mark` selector's "exactly one of" (in Rust a struct of
//   options the server checks), the open unions a client must accept from a newer
//   server (`ChangedState`, `ErrorCode`, which also has the SDK's own codes), and the
//   built-in categories as a value (`CATEGORIES`; ts-rs writes types only);
// - the SDK's own shapes: request frames without `rid`, request options, results.
// Each hand-written part is checked against the generated types below, so tsc fails
// when they drift apart.

import type { Category } from './generated/Category.js';
import type { Changed as WireChanged } from './generated/Changed.js';
import type { ChangedState as WireChangedState } from './generated/ChangedState.js';
import type { ClientFrame as WireClientFrame } from './generated/ClientFrame.js';
import type { ConversationSummary } from './generated/ConversationSummary.js';
import type { ErrorBody as WireErrorBody } from './generated/ErrorBody.js';
import type { ErrorCode as WireErrorCode } from './generated/ErrorCode.js';
import type { HistoryEntry } from './generated/HistoryEntry.js';
import type { MarkSelector as WireMarkSelector } from './generated/MarkSelector.js';
import type { Preferences } from './generated/Preferences.js';
import type { Reply as WireReply } from './generated/Reply.js';
import type { Rid } from './generated/Rid.js';
import type { ServerFrame as WireServerFrame } from './generated/ServerFrame.js';
import type { Stream } from './generated/Stream.js';
import type { UpTo } from './generated/UpTo.js';

export type { Action } from './generated/Action.js';
export type { Channels as ChannelPreference } from './generated/Channels.js';
export type { Counts } from './generated/Counts.js';
export type { MarkState } from './generated/MarkState.js';
export type { Message } from './generated/Message.js';
export type { MessageState } from './generated/MessageState.js';
export type { PreferencesPatch } from './generated/PreferencesPatch.js';
export type { QuietHours } from './generated/QuietHours.js';
export type { Receipt } from './generated/Receipt.js';
export type { ReceiptState } from './generated/ReceiptState.js';
export type { Severity } from './generated/Severity.js';
export type { StateFilter } from './generated/StateFilter.js';
export type { Welcome } from './generated/Welcome.js';
export type { Category, ConversationSummary, HistoryEntry, Preferences, Rid };

/** Fails to compile unless `T` is `true`: the checks of this file against the generated types. */
type Assert<T extends true> = T;

type IsNever<T> = [T] extends [never] ? true : false;

/** Every key of any member of `T`. */
type KeysOfUnion<T> = T extends unknown ? keyof T : never;

/** The literal members of an open union such as `'a' | 'b' | (string & {})`. */
type KnownLiterals<T> = T extends string ? (string extends T ? never : T) : never;

/** The six built-in categories; an operator may configure more. */
export type BuiltinCategory = KnownLiterals<Category>;

const BUILTIN_CATEGORIES = [
  'announcement',
  'remind',
  'resource_subscription',
  'resource_publish',
  'system',
  'mailbox',
] as const;

export const CATEGORIES: readonly BuiltinCategory[] = BUILTIN_CATEGORIES;

// Every built-in category of the Rust `Category::BUILTIN` is in CATEGORIES.
type _CategoriesComplete = Assert<IsNever<Exclude<BuiltinCategory, (typeof BUILTIN_CATEGORIES)[number]>>>;

/** `inbox`: the user's own messages; `all`: messages sent to everyone. */
export type StreamName = Stream;

/**
 * What a `changed` frame says happened to messages already delivered:
 * `unsnoozed`, `replaced` or `acted` today; a client ignores a state it does
 * not know (a newer server may add some).
 */
export type ChangedState = WireChangedState | (string & {});

/**
 * Messages this user already has changed state by the server's doing:
 * `unsnoozed` (their snooze ended: unread again, back in the list),
 * `replaced` (a newer message of the same collapse group, `by`, stands for them),
 * `acted` (a button was pressed, `action`, on any tab or device: read now).
 */
export interface Changed extends Omit<WireChanged, 'state'> {
  state: ChangedState;
}

/**
 * The server's error codes, the SDK's own (`timeout`: no reply in time;
 * `closed`: the client or its connection closed; `network`: a request could
 * not be sent) and any code a newer server may add.
 */
export type ErrorCode = WireErrorCode | 'timeout' | 'closed' | 'network' | (string & {});

export interface ErrorBody extends Omit<WireErrorBody, 'code'> {
  code: ErrorCode;
}

/** The one answer to a request; the SDK also makes these for its own errors. */
export interface Reply extends Omit<WireReply, 'error'> {
  error?: ErrorBody;
}

type WireFrame<T extends WireServerFrame['type']> = Extract<WireServerFrame, { type: T }>;

export type WelcomeFrame = WireFrame<'welcome'>;
export type MessageFrame = WireFrame<'message'>;
export type CountsFrame = WireFrame<'counts'>;
export type ReceiptFrame = WireFrame<'receipt'>;
export type PreferencesFrame = WireFrame<'preferences'>;
/** The node is draining: connect again after `after_ms` (the SDK does). */
export type ReconnectFrame = WireFrame<'reconnect'>;
/**
 * The server's copy of `stream` went back (its store lost the newest
 * messages, e.g. a Redis failover): `seq` is the position now; messages
 * after it follow and may include ones already seen (the SDK recognises
 * them by id).
 */
export type ResetFrame = WireFrame<'reset'>;
export type ReplyFrame = { type: 'reply' } & Reply;
export type ChangedFrame = { type: 'changed' } & Changed;

/** Every frame the server sends, `reply` and `changed` with the SDK's open unions. */
export type ServerFrame = Exclude<WireServerFrame, { type: 'reply' | 'changed' }> | ReplyFrame | ChangedFrame;

/**
 * Exactly one selector. Hand-written: in Rust (and so in the generated
 * `MarkSelector`) it is one struct of optional fields, exactly one of which
 * the server accepts; ts-rs can only say "any of them".
 */
export type MarkSelector = { ids: string[] } | { up_to: UpTo } | { category: Category } | { all: true } | { peer: string };

// Each selector is one the server reads, and the generated one has no selector more.
type _MarkSelectorOnTheWire = Assert<MarkSelector extends WireMarkSelector ? true : false>;
type _MarkSelectorComplete = Assert<IsNever<Exclude<keyof WireMarkSelector, KeysOfUnion<MarkSelector>>>>;

type WireRequest<T extends WireClientFrame['type']> = Extract<WireClientFrame, { type: T }>;

/** Every client frame that expects a reply, by its `type`. */
export type RequestType = Exclude<WireClientFrame['type'], 'ack'>;

/** A request's fields, without `type` and `rid` (the SDK sets those). */
type RequestFields<T extends RequestType> = Omit<WireRequest<T>, 'type' | 'rid'>;

/**
 * Narrows history, marks and the `counts` request: messages with any of
 * `tags` (each 1–64 bytes of `[a-z0-9:_.-]`, at most 10) and of `severity`.
 */
export type TagFilter = RequestFields<'counts'>;

export type PageOptions = RequestFields<'conversations'>;

/** `snoozed: true`: the snoozed messages (left out otherwise). */
export type HistoryOptions = RequestFields<'history'>;

/**
 * A private send's options. `key`: the idempotency key; the SDK makes one
 * when absent, so a retry after a reconnect stores nothing twice.
 */
export type SendOptions = Omit<RequestFields<'send'>, 'to' | 'body'>;

/** `until` (unix ms) goes with `state: 'snoozed'` only. */
type MarkFrame = { type: 'mark' } & Omit<RequestFields<'mark'>, keyof WireMarkSelector> & MarkSelector;

/** Client frames, by type, without `rid` (the SDK assigns it). */
export type RequestFrames = { [T in RequestType]: T extends 'mark' ? MarkFrame : { type: T } & RequestFields<T> };

export type RequestFrame = RequestFrames[RequestType];

export type AckFrame = WireRequest<'ack'>;

/** Any frame a client sends (a request carries its `rid`). */
export type ClientFrame = (RequestFrame & { rid: Rid }) | AckFrame;

// What the SDK sends is a frame the server reads.
type _ClientFrameOnTheWire = Assert<ClientFrame extends WireClientFrame ? true : false>;

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
