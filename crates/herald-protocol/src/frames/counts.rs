//! What a user's inbox adds up to: the conversation list's rows and the
//! counts frame.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::history::HistoryEntry;

/// One conversation in a `conversations` reply.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConversationSummary {
    pub peer: String,
    /// The newest message, either direction (with its `receipt` if the
    /// user sent it).
    pub last: HistoryEntry,
    /// Messages from the peer the user has not read.
    pub unread: u64,
}

/// The user's unread numbers: a badge per category and the totals.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Counts {
    /// Every category, zeros included.
    pub unread: BTreeMap<String, u64>,
    pub unread_total: u64,
    pub unseen_total: u64,
    /// `unread_total` by the messages' severity (the four add up to it).
    #[serde(default)]
    pub unread_by_severity: UnreadBySeverity,
}

/// The unread messages of each severity, zeros included.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct UnreadBySeverity {
    pub low: u64,
    pub normal: u64,
    pub high: u64,
    pub critical: u64,
}

impl UnreadBySeverity {
    /// From numbers in the order of [`crate::Severity::ALL`].
    pub fn from_array([low, normal, high, critical]: [u64; 4]) -> Self {
        UnreadBySeverity {
            low,
            normal,
            high,
            critical,
        }
    }
}
