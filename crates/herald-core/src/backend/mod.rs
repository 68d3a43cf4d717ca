//! What a backend implements: the traits the services of a node run on, and
//! the types that belong to them. Nothing here does any work; the services
//! ([`Sender`](crate::Sender), [`Inbox`](crate::Inbox),
//! [`Conversations`](crate::Conversations), [`FanOut`](crate::FanOut), the
//! hub) sit outside and reach the backend only through these traits, so a
//! backend is swapped in `herald-gateway`'s node wiring and nowhere else.
//!
//! A new backend implements, each shared by every node of a deployment:
//!
//! - [`Store`]: the ordered streams (append and publish in one step, reads,
//!   device cursors), the read state with its compare-and-set, and the kept
//!   counts; with it [`ConversationStore`], the store's conversation side (a
//!   supertrait, implemented next to the store).
//! - [`Broker`]: which users' channels this node listens to; what arrives is
//!   handed to a [`BrokerSink`] (the node's hub).
//! - [`Presence`]: which node holds which user's connections ([`ConnInfo`]),
//!   with node heartbeats.
//! - [`Idempotency`]: claims of idempotency keys ([`Claim`]).
//! - [`Topics`]: topic subscriptions, both ways.
//! - [`Blocklist`]: who blocked whom (the store's append reads it).
//! - [`JobQueue`]: durable fan-out jobs ([`Job`], [`Lease`], [`JobStatus`]).
//! - [`Timers`]: scheduled sends ([`ScheduledSend`], leased to the node
//!   delivering them).
//! - [`PreferenceStore`]: what each user set of their preferences
//!   ([`StoredPreferences`]), changed atomically with its push.
//! - [`WebhookQueue`]: the unread fallback webhooks' events
//!   ([`WebhookEvent`]), leased to the node delivering them.
//!
//! They speak in the crate's shared types ([`StreamKey`](crate::StreamKey),
//! [`Draft`](crate::Draft), [`ReadState`](crate::ReadState) and
//! [`ReadChange`](crate::ReadChange), [`Delivery`](crate::Delivery),
//! [`CoreError`](crate::CoreError)) and check their input with the
//! validators the services use too ([`validate_user_id`](crate::validate_user_id),
//! [`validate_topic`](crate::validate_topic), [`validate_block`](crate::validate_block),
//! [`validate_idempotency_key`](crate::validate_idempotency_key)). The
//! in-memory backend ([`crate::memory`]) is the reference; the behavioural
//! suite (`testkit`, feature `testkit`) is the contract's behaviour, and a
//! new backend runs it as `herald-redis`'s tests do.

mod blocklist;
mod broker;
mod conversations;
mod idempotency;
mod jobs;
mod preferences;
mod presence;
mod store;
mod timers;
mod topics;
mod webhooks;

pub use blocklist::{Blocklist, MAX_BLOCKED_PER_USER};
pub use broker::{Broker, BrokerSink};
pub use conversations::{ConversationStore, MAX_PEERS, MAX_RECEIPTS};
pub use idempotency::{pending_lease, Claim, Idempotency, PENDING_LEASE};
pub use jobs::{
    message_id, Job, JobMessage, JobQueue, JobState, JobStatus, Lease, WorkerCounts, STATUS_KEPT,
};
pub use preferences::{
    PreferenceChange, PreferenceStore, StoredPreferences, MAX_TOPIC_PREFERENCES,
};
pub use presence::{ConnInfo, Presence};
pub use store::{AnnouncementRange, ErasedStore, Store};
pub use timers::{
    Cancelled, ScheduleState, ScheduledSend, ScheduledStatus, Timers, MAX_SCHEDULE_AHEAD,
    SCHEDULE_KEPT,
};
pub use topics::{Topics, MAX_TOPICS_PER_USER};
pub use webhooks::{
    action_event_id, event_id, AudiencePage, Created, WebhookBacklog, WebhookEvent, WebhookQueue,
    WebhookState, DEAD_KEPT, ENDED_KEPT, EVERYONE,
};
