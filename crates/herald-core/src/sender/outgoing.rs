//! What a send takes in ([`Outgoing`], its [`Target`]) and what it answers
//! ([`Sent`], [`StoredAt`]).

use herald_protocol::Stream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::Draft;

/// Who receives a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// These users' inboxes (checked, sorted, without repeats).
    Users(Vec<String>),
    /// Everyone: stored once in the `all` stream.
    All,
}

impl Target {
    /// Inbox appends this target costs.
    pub fn appends(&self) -> usize {
        match self {
            Target::Users(users) => users.len(),
            Target::All => 1,
        }
    }
}

/// A checked message with its receivers, ready to store.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub target: Target,
    pub draft: Draft,
    /// The idempotency key and the fingerprint of the request it came with.
    pub idempotency: Option<(String, String)>,
    /// When to append it (unix ms), if not now: the send schedules it
    /// (see [`crate::Scheduler`]).
    pub deliver_at: Option<i64>,
}

/// Where one message was stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAt {
    pub stream: Stream,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub seq: u64,
}

/// The outcome of storing one message, or of scheduling it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub id: Uuid,
    /// Empty for a scheduled message (nothing is stored yet).
    pub stored: Vec<StoredAt>,
    /// Set when the message was scheduled rather than stored: when it is
    /// due (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<i64>,
    /// The receivers whose preferences kept it out (`in_app: false` for
    /// its category or topic): nothing stored for them.
    #[serde(default)]
    pub skipped: Vec<String>,
}
