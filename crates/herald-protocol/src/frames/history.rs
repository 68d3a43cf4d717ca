//! What `mark` selects and does, and what history answers: a message
//! with its read state and, for a private message, its receipt.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::{Message, Stream};

/// What a `mark` does to each message it selects.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum MarkState {
    /// The badge was shown: unseen → seen.
    Seen,
    /// unseen or seen → read.
    Read,
    /// read → seen (unread again, but not new).
    Unread,
    /// Out of the default history and the counts, until unarchived.
    Archived,
    Unarchived,
    /// Gone from this user's history and counts, for good.
    Deleted,
    /// Out of the counts and the default history until the mark's `until`
    /// (unix ms), then unread again (a `changed` frame, `unsnoozed`). A
    /// `read`, `archived` or `deleted` mark before then cancels it.
    Snoozed,
}

/// Which messages a `mark` applies to. Exactly one field is set; the
/// server checks that.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct MarkSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<UpTo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(as = "Option<crate::Category>"))]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
    /// Every private message this peer sent the user (a conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// Every message of `stream` with a seq up to `seq`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct UpTo {
    pub stream: Stream,
    pub seq: u64,
}

/// A message's read state as history shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    Unseen,
    Seen,
    Read,
    Archived,
    /// Until its `until` (history entries carry it).
    Snoozed,
}

/// Which messages a history page lists (default: everything not archived).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    /// Unseen or seen.
    Unread,
    Read,
    Archived,
}

/// One message of a history page, with its state for this user.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub message: Message,
    pub state: MessageState,
    /// In a conversation, on each message the user sent: how far it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptState>,
    /// A snoozed message: when it comes back (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

/// How far a private message got with its receiver.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ReceiptState {
    /// Stored in the receiver's inbox.
    Sent,
    /// A device of the receiver acknowledged it.
    Delivered,
    /// The receiver marked it read.
    Read,
}

/// Pushed to every connection of a private message's sender when the
/// receiver's device acknowledges it or the receiver reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Receipt {
    /// The receiver (the sender's peer in the conversation).
    pub peer: String,
    /// The message's id.
    pub id: Uuid,
    pub state: ReceiptState,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub ts: time::OffsetDateTime,
}
