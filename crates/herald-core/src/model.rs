//! The small domain types shared by every backend.

use std::time::Duration;

use herald_protocol::{Category, Message, Severity, Stream};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{CoreError, Result};

/// The device name used when a client does not name its device.
pub const DEFAULT_DEVICE: &str = "default";

/// Longest user id (and device name) accepted, in bytes.
const MAX_ID_LEN: usize = 128;

/// Checks a user id (or device name) before it becomes part of a key.
///
/// Braces are refused because Redis Cluster hash tags use them: a user's keys
/// must all hash to one slot, and `{` `}` inside the id would break that.
pub fn validate_user_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(CoreError::Invalid(format!(
            "a user id must be 1 to {MAX_ID_LEN} bytes long"
        )));
    }
    if id
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '{' || c == '}')
    {
        return Err(CoreError::Invalid(
            "a user id may not contain whitespace, control characters, '{' or '}'".into(),
        ));
    }
    Ok(())
}

/// One ordered, gap-free stream of messages: a user's inbox or the shared
/// `all` stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamKey {
    Inbox(String),
    All,
}

impl StreamKey {
    pub fn inbox(user: impl Into<String>) -> Self {
        StreamKey::Inbox(user.into())
    }

    pub fn stream(&self) -> Stream {
        match self {
            StreamKey::Inbox(_) => Stream::Inbox,
            StreamKey::All => Stream::All,
        }
    }

    pub fn user(&self) -> Option<&str> {
        match self {
            StreamKey::Inbox(user) => Some(user),
            StreamKey::All => None,
        }
    }

    /// The stream `stream` as seen by `user`.
    pub fn for_user(user: &str, stream: Stream) -> Self {
        match stream {
            Stream::Inbox => StreamKey::inbox(user),
            Stream::All => StreamKey::All,
        }
    }
}

/// A message before the store gives it its seq.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub id: Uuid,
    pub category: Category,
    /// `normal` unless the sender chose another.
    pub severity: Severity,
    /// The sender's labels, checked, sorted, without repeats.
    pub tags: Vec<String>,
    pub from: Option<String>,
    pub title: Option<String>,
    pub body: String,
    pub data: serde_json::Value,
    pub ts: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    /// The collapse group (see `docs/data-model.md`, *Collapse*): the
    /// append replaces the receiver's unread message with the same key.
    pub group_key: Option<String>,
    /// Nobody may mute it: the receivers' preferences are not read.
    pub critical: bool,
    /// Whether a receiver who set nothing for its category gets it in the
    /// app (the category's operator default); the receiver's own setting,
    /// and the topic's, decide otherwise (`docs/data-model.md`,
    /// *Preferences*).
    pub in_app_default: bool,
    /// The topic it was published to (a fan-out), whose `in_app` setting
    /// of each receiver counts too.
    pub topic: Option<String>,
    /// How long after it is stored an unread copy raises the receiver's
    /// fallback webhook (the send's `fallback_after_secs`, else its
    /// category's); `None`: never. Not part of the stored message.
    pub fallback_after: Option<Duration>,
    /// Action buttons (checked by the validator).
    pub actions: Vec<herald_protocol::Action>,
}

impl Draft {
    /// A draft with a fresh time-ordered id, stamped now.
    pub fn new(category: Category, body: impl Into<String>) -> Self {
        Draft {
            id: Uuid::now_v7(),
            category,
            severity: Severity::Normal,
            tags: Vec::new(),
            from: None,
            title: None,
            body: body.into(),
            data: serde_json::Value::Object(Default::default()),
            ts: OffsetDateTime::now_utc(),
            expires_at: None,
            group_key: None,
            critical: false,
            in_app_default: true,
            topic: None,
            fallback_after: None,
            actions: Vec::new(),
        }
    }

    pub fn into_message(self, stream: Stream, seq: u64) -> Message {
        Message {
            seq,
            stream,
            id: self.id,
            category: self.category,
            severity: self.severity,
            tags: self.tags,
            from: self.from,
            title: self.title,
            body: self.body,
            data: self.data,
            ts: self.ts,
            expires_at: self.expires_at,
            group_key: self.group_key,
            collapsed: None,
            replaces: None,
            critical: self.critical,
            silent: false,
            actions: self.actions,
            acted: None,
        }
    }
}

/// How much of each stream the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest `max_entries` messages of a stream are kept.
    pub max_entries: usize,
    /// Messages older than this are dropped.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_entries: 10_000,
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_checked() {
        assert!(validate_user_id("alice").is_ok());
        assert!(validate_user_id("a@b.example").is_ok());
        assert!(validate_user_id("").is_err());
        assert!(validate_user_id("a b").is_err());
        assert!(validate_user_id("{a}").is_err());
        assert!(validate_user_id(&"x".repeat(129)).is_err());
    }
}
