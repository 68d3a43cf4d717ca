//! The message as stored in an inbox and as pushed to a client.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Which ordered stream a message belongs to.
///
/// Each user has an `inbox` with its own gap-free seq; messages sent to
/// everyone live once in the shared `all` stream, which has a seq of its own.
/// A client keeps one cursor per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
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

/// The six kinds of site message of the original design (站内消息).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// 公告: an announcement.
    Announcement,
    /// 提醒: a reminder.
    Remind,
    /// 资源订阅提醒: something the user subscribed to changed.
    ResourceSubscription,
    /// 资源发布提醒: someone the user follows published.
    ResourcePublish,
    /// 系统提醒: a system notice.
    System,
    /// 私信: a private message.
    Mailbox,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Announcement,
        Category::Remind,
        Category::ResourceSubscription,
        Category::ResourcePublish,
        Category::System,
        Category::Mailbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Announcement => "announcement",
            Category::Remind => "remind",
            Category::ResourceSubscription => "resource_subscription",
            Category::ResourcePublish => "resource_publish",
            Category::System => "system",
            Category::Mailbox => "mailbox",
        }
    }
}

/// A category name that is not one of the six.
#[derive(Debug, thiserror::Error)]
#[error("unknown category {0:?}; expected one of announcement, remind, resource_subscription, resource_publish, system, mailbox")]
pub struct UnknownCategory(pub String);

impl std::str::FromStr for Category {
    type Err = UnknownCategory;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCategory(s.to_owned()))
    }
}

/// One message in a stream. `seq` is assigned by the store when the message is
/// appended and is gap-free per stream, starting at 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub seq: u64,
    pub stream: Stream,
    pub id: Uuid,
    pub category: Category,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub body: String,
    #[serde(default = "empty_object")]
    pub data: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}
