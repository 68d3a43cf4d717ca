//! Herald's core: what a gateway node does, independent of backend and
//! transport.
//!
//! - [`Store`], [`Broker`] and [`Presence`] are the three backend traits.
//!   [`memory`] implements them in process (the embedded default); the
//!   `herald-redis` crate implements them on Redis.
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
//! - [`Sender`] is the send operation of both transports, with the one
//!   message validator ([`MessageLimits`]).
//!
//! Enable the `testkit` feature for the behavioural suite that every backend
//! must pass.

mod blocklist;
mod bounded_queue;
mod broker;
mod categories;
mod conversations;
mod delivery;
mod error;
pub mod fanout;
mod hub;
mod idempotency;
mod inbox;
pub mod memory;
mod model;
mod paging;
mod presence;
mod read_state;
mod receipts;
mod send_order;
mod sender;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
mod topics;
mod user_channels;
mod validate;
mod written_seq;

pub use blocklist::{validate_block, Blocklist, MAX_BLOCKED_PER_USER};
pub use bounded_queue::TryRecvError;
pub use broker::{Broker, BrokerSink};
pub use categories::{Categories, CategorySpec};
pub use conversations::{
    ConversationStore, Conversations, ConversationsPage, MAX_CONVERSATIONS_PAGE, MAX_PEERS,
    MAX_RECEIPTS,
};
pub use delivery::Delivery;
pub use error::{CoreError, Result};
pub use fanout::{FanOut, FanOutSettings, Job, JobQueue, JobState, JobStatus, Published};
pub use hub::{conn_queue, ConnEvent, ConnHandle, Hub, QueueReceiver, QueueSender};
pub use idempotency::{
    fingerprint, pending_lease as idempotency_lease, validate_key as validate_idempotency_key,
    Claim, Idempotency,
};
pub use inbox::{CountsSnapshot, HistoryQuery, Inbox, Selector};
pub use model::{validate_user_id, ConnInfo, Draft, Retention, StreamKey, DEFAULT_DEVICE};
pub use paging::HistoryPage;
pub use presence::Presence;
pub use read_state::{
    CountDelta, Flags, KeptCounts, Level, MarksUpdate, ReadChange, ReadState, StreamMarks,
};
pub use send_order::{SendOrder, Turn};
pub use sender::{Outgoing, Sender, Sent, StoredAt, Target};
pub use store::{AnnouncementRange, Store};
pub use topics::{validate_topic, Topics, MAX_TOPICS_PER_USER, MAX_TOPIC_LEN};
pub use user_channels::UserChannels;
pub use validate::{MessageLimits, NewMessage};
pub use written_seq::{went_back, Verdict, WrittenSeq, WrittenSeqs};

pub use herald_protocol as protocol;
