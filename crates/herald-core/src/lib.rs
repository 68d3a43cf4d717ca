//! Herald's core: what a gateway node does, independent of backend and
//! transport.
//!
//! - [`backend`] holds every trait a backend implements ([`Store`],
//!   [`Broker`], [`Presence`], [`Idempotency`], [`Topics`], [`Blocklist`],
//!   [`JobQueue`], [`Timers`]) and nothing else. [`memory`] implements them in process
//!   (the embedded default); the `herald-redis` crate implements them on
//!   Redis.
//! - [`Hub`] holds this node's local connections by user and hands each of
//!   them the deliveries the broker brings.
//! - [`WrittenSeq`] decides, per connection and stream, whether a delivery is new,
//!   a duplicate, or reveals a gap that must be read from the store: this is
//!   what makes delivery exactly-once and in order on every connection.
//! - [`UserChannels`] counts which users' broker channels this node needs
//!   (not to be confused with topic subscriptions of users).
//! - [`Inbox`] marks messages, counts what is unread and lists history,
//!   on top of the read state the store keeps ([`ReadState`]).
//! - [`FanOut`] publishes to topics: a durable job per publish
//!   ([`JobQueue`]) that any node's worker appends, once per subscriber.
//! - [`Conversations`] lists private conversations and pages them, with
//!   receipts derived from the receiver's stored state.
//! - [`UserPreferences`] reads and changes users' preferences (what a
//!   backend's [`PreferenceStore`] keeps, with the operator's defaults
//!   filled in); [`QuietWindow`] is a user's quiet hours.
//! - [`Sender`] is the send operation of both transports, with the one
//!   message validator ([`MessageLimits`]).
//! - [`Scheduler`] delivers scheduled sends (`deliver_at`) when due, from
//!   whichever node claims them ([`Timers`]).
//! - [`UserData`] exports everything Herald holds about one user and
//!   erases it.
//! - [`Webhooks`] sends the unread fallback webhooks: events armed when a
//!   message with a fallback is stored, checked when due, signed, retried,
//!   from whichever node claims them ([`WebhookQueue`]).
//!
//! Enable the `testkit` feature for the behavioural suite that every backend
//! must pass.

mod actions;
pub mod backend;
mod blocklist;
mod bounded_queue;
mod categories;
pub mod collapse;
mod conversations;
mod delivery;
mod error;
pub mod fanout;
mod hub;
mod idempotency;
mod inbox;
pub mod memory;
mod model;
mod paced_presence;
mod paging;
mod preferences;
mod quiet_hours;
mod read_state;
mod receipts;
mod schedule;
mod send_order;
mod sender;
mod tag_filter;
#[cfg(feature = "testkit")]
pub mod testkit;
mod topics;
mod user_channels;
mod user_data;
mod validate;
mod webhooks;
mod written_seq;

pub use actions::{check_actions, MAX_ACTIONS, MAX_ACTION_ID, MAX_ACTION_LABEL, MAX_ACTION_URL};
pub use backend::pending_lease as idempotency_lease;
pub use backend::{
    AnnouncementRange, Blocklist, Broker, BrokerSink, Claim, ConnInfo, ConversationStore,
    Created as WebhookCreated, ErasedStore, Idempotency, Job, JobQueue, JobState, JobStatus,
    PreferenceChange, PreferenceStore, Presence, Store, StoredPreferences, Timers, Topics,
    WebhookBacklog, WebhookEvent, WebhookQueue, WebhookState, MAX_BLOCKED_PER_USER, MAX_PEERS,
    MAX_RECEIPTS, MAX_TOPICS_PER_USER, MAX_TOPIC_PREFERENCES,
};
pub use blocklist::validate_block;
pub use bounded_queue::TryRecvError;
pub use categories::{Categories, CategorySpec};
pub use conversations::{Conversations, ConversationsPage, MAX_CONVERSATIONS_PAGE};
pub use delivery::Delivery;
pub use error::{CoreError, Result};
pub use fanout::{FanOut, FanOutSettings, Published};
pub use hub::{conn_queue, ConnEvent, ConnHandle, Hub, QueueReceiver, QueueSender};
pub use idempotency::{fingerprint, validate_key as validate_idempotency_key};
pub use inbox::{Acted, CountsSnapshot, HistoryQuery, Inbox, Selector, Woken};
pub use model::{validate_user_id, Draft, Retention, StreamKey, DEFAULT_DEVICE};
pub use paced_presence::PacedPresence;
pub use paging::HistoryPage;
pub use preferences::{apply_preference_change, keeps_out, UserPreferences};
pub use quiet_hours::QuietWindow;
pub use read_state::{
    CountDelta, Flags, KeptCounts, Level, MarksUpdate, ReadChange, ReadState, StreamMarks,
};
pub use schedule::{unix_ms, Round, ScheduleSettings, Scheduler, WakeRound};
pub use send_order::{SendOrder, Turn};
pub use sender::{Outgoing, Sender, Sent, StoredAt, Target};
pub use tag_filter::TagFilter;
pub use topics::{validate_topic, MAX_TOPIC_LEN};
pub use user_channels::UserChannels;
#[cfg(feature = "openapi")]
pub use user_data::ExportDocument;
pub use user_data::{Erased, Export, UserData, UserDataParts, EXPORT_PAGE};
pub use validate::{MessageLimits, NewMessage, MAX_FALLBACK_AFTER_SECS, MAX_GROUP_KEY};
pub use webhooks::{
    retry_delay, PostOutcome, RetryDead, Signer, WebhookObserver, WebhookPoster, WebhookRequest,
    WebhookSettings, Webhooks, ACT_WAIT, MESSAGE_ACTION, MESSAGE_UNREAD,
};
pub use written_seq::{went_back, Verdict, WrittenSeq, WrittenSeqs};

pub use herald_protocol as protocol;
