// The request and answer bodies of the server API, taken from the types
// generated from docs/openapi.json (src/generated/openapi.ts, written by
// `npm run gen`, never edited by hand; test/generated.test.ts fails when it
// differs from a fresh generation). Each name is read off an operation (by
// its operationId) rather than a schema's name, so a method's types are
// exactly what the document says that route takes and answers.
import type { components, operations } from './generated/openapi.js';

type Schemas = components['schemas'];
type Op = keyof operations;

/** The JSON body an operation takes. */
export type RequestBody<O extends Op> = operations[O] extends {
  requestBody?: { content: { 'application/json': infer B } };
}
  ? B
  : never;

/** The JSON body of an operation's success (its 200, 201 or 202). */
export type Success<O extends Op> = operations[O]['responses'] extends infer R
  ? R extends { 200: { content: { 'application/json': infer B } } }
    ? B
    : R extends { 201: { content: { 'application/json': infer B } } }
      ? B
      : R extends { 202: { content: { 'application/json': infer B } } }
        ? B
        : never
  : never;

/** An operation's query parameters. */
export type Query<O extends Op> = NonNullable<operations[O]['parameters']['query']>;

/** A query whose `tags` (a comma-separated list on the wire) may also be given as an array. */
type WithTagList<Q> = Q extends { tags?: unknown } ? Omit<Q, 'tags'> & { tags?: string | string[] } : Q;

// --- the wire types ---------------------------------------------------------
export type Message = Schemas['Message'];
export type HistoryEntry = Schemas['HistoryEntry'];
export type Category = Schemas['Category'];
export type Severity = Schemas['Severity'];
export type Action = Schemas['Action'];
export type MessageState = Schemas['MessageState'];
export type MarkState = Schemas['MarkState'];
export type ErrorCode = Schemas['ErrorCode'];
export type Preferences = Success<'get_preferences'>;
export type PreferencesPatch = RequestBody<'patch_preferences'>;

// --- sending ------------------------------------------------------------------
export type SendRequest = RequestBody<'post_messages'>;
/** A send's answer: stored now, or scheduled (`deliver_at`). */
export type SendAnswer = Success<'post_messages'>;
export type ScheduledResult = Extract<SendAnswer, { scheduled: string }>;
export type SendResult = Exclude<SendAnswer, ScheduledResult>;
export type BatchResult = Success<'post_batch'>;
export type PublishRequest = RequestBody<'publish'>;
export type PublishResult = Success<'publish'>;
export type Job = Success<'job'>;
export type ScheduledStatus = Success<'scheduled'>;

// --- users --------------------------------------------------------------------
export type OnlineUsers = Success<'online'>;
export type UserPresence = Success<'user_presence'>;
export type InboxQuery = Query<'inbox'>;
export type InboxPage = Success<'inbox'>;
export type HistoryQuery = WithTagList<Query<'history'>>;
export type HistoryPage = Success<'history'>;
export type CountsFilter = WithTagList<Query<'counts'>>;
/** Every category's unread count (no filter). */
export type Counts = Extract<Success<'counts'>, { unread_total: number }>;
/** The unread count of a tags/severity filter. */
export type FilteredCounts = Exclude<Success<'counts'>, Counts>;
export type MarkRequest = RequestBody<'mark'>;
export type Changed = Success<'mark'>;
export type ActRequest = RequestBody<'act'>;
export type Acted = Success<'act'>;
export type Topics = Success<'user_topics'>;
/** `changed: false`: it was already so. */
export type Toggled = Success<'subscribe'>;
export type SubscribersQuery = Query<'topic_subscribers'>;
export type SubscriberPage = Success<'topic_subscribers'>;
export type ConversationsQuery = Query<'conversations'>;
export type ConversationList = Success<'conversations'>;
export type ConversationQuery = Query<'conversation'>;
export type ConversationPage = Success<'conversation'>;
export type Blocks = Success<'blocks'>;

// --- admin --------------------------------------------------------------------
export type DeadWebhooksQuery = Query<'dead'>;
export type DeadWebhookPage = Success<'dead'>;
export type DeadWebhook = DeadWebhookPage['events'][number];
export type RetriedWebhook = Success<'retry_dead'>;
export type Erased = Success<'erase_user'>;

/** `GET /v1/users/{id}/export`: everything Herald holds about a user. */
export type UserExport = Success<'export_user'>;
