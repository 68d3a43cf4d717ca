//! The message as stored in an inbox and as pushed to a client.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::tags::Severity;

/// Which ordered stream a message belongs to.
///
/// Each user has an `inbox` with its own gap-free seq; messages sent to
/// everyone live once in the shared `all` stream, which has a seq of its own.
/// A client keeps one cursor per stream.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    #[default]
    Inbox,
    All,
}

impl Stream {
    /// Every stream a client keeps a cursor for.
    pub const ALL: [Stream; 2] = [Stream::Inbox, Stream::All];

    /// The stream's position in [`Stream::ALL`], for per-stream arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Inbox => "inbox",
            Stream::All => "all",
        }
    }
}

/// A kind of site message, by name. The six of the original design (站内消息)
/// are built in; operators may configure more (the gateway checks a name
/// against its configured categories, this type only checks its syntax).
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, pattern = "^[a-z0-9_]{1,64}$")
)]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
// In TypeScript: the built-in names, or any other string (a configured
// category), so editors still complete the built-in ones;
// `tests/typescript.rs` checks that it lists `Category::BUILTIN`.
#[cfg_attr(
    feature = "ts",
    ts(
        type = r#""announcement" | "remind" | "resource_subscription" | "resource_publish" | "system" | "mailbox" | (string & {})"#
    )
)]
#[serde(transparent)]
pub struct Category(Cow<'static, str>);

impl Category {
    /// 公告: an announcement (the one category that may go to everyone).
    pub const ANNOUNCEMENT: Category = Category(Cow::Borrowed("announcement"));
    /// 提醒: a reminder.
    pub const REMIND: Category = Category(Cow::Borrowed("remind"));
    /// 资源订阅提醒: something the user subscribed to changed.
    pub const RESOURCE_SUBSCRIPTION: Category = Category(Cow::Borrowed("resource_subscription"));
    /// 资源发布提醒: someone the user follows published.
    pub const RESOURCE_PUBLISH: Category = Category(Cow::Borrowed("resource_publish"));
    /// 系统提醒: a system notice.
    pub const SYSTEM: Category = Category(Cow::Borrowed("system"));
    /// 私信: a private message.
    pub const MAILBOX: Category = Category(Cow::Borrowed("mailbox"));

    /// The six built-in categories.
    pub const BUILTIN: [Category; 6] = [
        Category::ANNOUNCEMENT,
        Category::REMIND,
        Category::RESOURCE_SUBSCRIPTION,
        Category::RESOURCE_PUBLISH,
        Category::SYSTEM,
        Category::MAILBOX,
    ];

    /// Longest category name, in bytes.
    pub const MAX_LEN: usize = 64;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A category name that is not well formed.
#[derive(Debug, thiserror::Error)]
#[error("category names are 1 to 64 bytes of a-z, 0-9 and '_'; got {0:?}")]
pub struct InvalidCategory(pub String);

impl std::str::FromStr for Category {
    type Err = InvalidCategory;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(builtin) = Category::BUILTIN.iter().find(|c| c.as_str() == s) {
            return Ok(builtin.clone());
        }
        let well_formed = !s.is_empty()
            && s.len() <= Category::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if well_formed {
            Ok(Category(Cow::Owned(s.to_owned())))
        } else {
            Err(InvalidCategory(s.to_owned()))
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One message in a stream. `seq` is assigned by the store when the message is
/// appended and is gap-free per stream, starting at 1.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct Message {
    pub seq: u64,
    pub stream: Stream,
    pub id: Uuid,
    pub category: Category,
    /// `normal` unless the sender said otherwise (then absent). Right
    /// after `category`: the Redis scripts that un-count a message read
    /// the head of its entry up to here (`entry_head`).
    #[serde(default, skip_serializing_if = "Severity::is_normal")]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub severity: Severity,
    /// The sender's labels (`billing`, `team:42`), sorted; history, marks
    /// and counts filter by them. Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub body: String,
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "ts", ts(type = "Record<string, unknown>"))]
    pub data: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub ts: OffsetDateTime,
    /// After this the message is not pushed, listed or counted any more
    /// (its own `expires_at`, or its category's retention, whichever is
    /// sooner).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[cfg_attr(feature = "ts", ts(type = "string"))]
    pub expires_at: Option<OffsetDateTime>,
    /// The collapse group the sender named: a new message with the same key
    /// replaces this one while the receiver has not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// How many messages this one stands for (≥ 2) when it replaced an
    /// unread one of its group; absent for the first of a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapsed: Option<u32>,
    /// The id of the unread message of the group this one replaced (which
    /// left history and counts; its `changed` frame says the same).
    /// Set by the store: the Redis append script splices these last two
    /// fields in at the end of the encoding, so they stay the last fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Uuid>,
    /// Sent as one nobody may mute (operator API only): stored whatever
    /// the receiver's preferences, never silent. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub critical: bool,
    /// Pushed live inside the receiver's quiet hours: show it, raise no
    /// toast or sound. Only on live frames (never stored, never in a
    /// backlog, sync or history), never on a critical message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub silent: bool,
    /// Buttons the receiver may press, at most one of them, once
    /// ([`ClientFrame::Act`](crate::ClientFrame::Act)). Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(optional = nullable))]
    pub actions: Vec<Action>,
    /// The action this receiver took (its id), set from the receiver's
    /// read state on a sync, a backlog and history; never stored with the
    /// message, absent on live frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acted: Option<String>,
}

/// One action button of a message: `id` is what an `act` names (unique in
/// the message), `label` what the button says, `url` where a client may
/// take the user after acting (http or https only).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub id: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Message {
    /// Expired at `now`: no longer pushed, listed or counted.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}
