//! Every frame of protocol v1. Each frame is an object with a `type` field.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::{Message, Stream};
use crate::preferences::{Preferences, PreferencesPatch};

mod counts;
mod history;

pub use counts::{ConversationSummary, Counts, UnreadBySeverity};
pub use history::{
    HistoryEntry, MarkSelector, MarkState, MessageState, Receipt, ReceiptState, StateFilter, UpTo,
};

/// A request id chosen by the client; echoed in the one reply to that request.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(untagged)]
pub enum Rid {
    Int(i64),
    Str(String),
}

impl From<&str> for Rid {
    fn from(s: &str) -> Self {
        Rid::Str(s.to_owned())
    }
}

impl From<i64> for Rid {
    fn from(n: i64) -> Self {
        Rid::Int(n)
    }
}

/// Frames a client sends. A field a frame does not know is refused
/// (`bad_request` naming it), never ignored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Send everything after `since` in the inbox (and after `since_all` in
    /// the `all` stream when given), in order, then continue live.
    /// `since_id` / `since_all_id`: the id of the message the client has at
    /// that seq, so the server can tell that its stream went back (see
    /// [`ServerFrame::Reset`]) even when new messages already passed it.
    Sync {
        rid: Rid,
        since: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_all: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_all_id: Option<Uuid>,
    },
    /// Everything up to `seq` of `stream` was delivered on this device.
    Ack {
        seq: u64,
        #[serde(default)]
        stream: Stream,
    },
    /// A private message (category `mailbox`) to another user.
    Send {
        rid: Rid,
        to: String,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(type = "Record<string, unknown>"))]
        data: Option<serde_json::Value>,
        /// Idempotency key: a retry with the same key gets the first reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// After this the message is not pushed, listed or counted.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "time::serde::rfc3339::option"
        )]
        #[cfg_attr(feature = "ts", ts(type = "string"))]
        expires_at: Option<time::OffsetDateTime>,
        /// Collapse group: replaces the receiver's unread message with the
        /// same key (1–128 characters).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_key: Option<String>,
        /// Labels (≤ 10, each ≤ 64 bytes of `[a-z0-9:_.-]`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<Vec<String>>,
        /// `low`, `normal` (the default), `high` or `critical`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(as = "Option<crate::Severity>"))]
        severity: Option<String>,
    },
    /// An application-level ping; answered with an `ok` reply.
    Ping {
        rid: Rid,
    },
    /// Changes the read state of the messages picked by exactly one
    /// selector (`ids`, `up_to`, `category` or `all`).
    Mark {
        rid: Rid,
        state: MarkState,
        #[serde(flatten)]
        selector: MarkSelector,
        /// With `snoozed` (and only then): when the messages come back
        /// unread, unix ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<i64>,
        /// Only the selected messages with any of these tags.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<Vec<String>>,
        /// Only the selected messages of this severity.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(as = "Option<crate::Severity>"))]
        severity: Option<String>,
    },
    /// Subscribes this user to a topic (`article:42`; following a user is
    /// `user:<id>`).
    Subscribe {
        rid: Rid,
        topic: String,
    },
    Unsubscribe {
        rid: Rid,
        topic: String,
    },
    /// The user's topics.
    Topics {
        rid: Rid,
    },
    /// Refuses private messages from `user` from now on (the blocked user
    /// only ever sees the error `blocked`).
    Block {
        rid: Rid,
        user: String,
    },
    Unblock {
        rid: Rid,
        user: String,
    },
    /// The user's private conversations, the most recently active first.
    Conversations {
        rid: Rid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// A page of the private messages between the user and `peer`, both
    /// directions, newest first.
    Conversation {
        rid: Rid,
        peer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// The user's preferences (the reply's `preferences`).
    Preferences {
        rid: Rid,
    },
    /// Changes some of the user's preferences (merged into them); the
    /// reply has them all, and every connection of the user gets a
    /// `preferences` frame.
    SetPreferences {
        rid: Rid,
        preferences: PreferencesPatch,
    },
    /// A page of the user's history, newest first.
    History {
        rid: Rid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(as = "Option<crate::Category>"))]
        category: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<StateFilter>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// `true`: the snoozed messages only (left out otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snoozed: Option<bool>,
        /// Only messages with any of these tags.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<Vec<String>>,
        /// Only messages of this severity.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(as = "Option<crate::Severity>"))]
        severity: Option<String>,
    },
    /// The unread count of the messages with any of `tags` and/or of
    /// `severity` (the reply's `unread`): a request, never pushed.
    Counts {
        rid: Rid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(as = "Option<crate::Severity>"))]
        severity: Option<String>,
    },
    /// Presses the action button `action` of the message `message`: the
    /// message is marked read and every tab gets a `changed` frame
    /// (`acted`). Only the first act on a message counts; another gets
    /// the error `already_acted`.
    Act {
        rid: Rid,
        message: Uuid,
        action: String,
    },
}

impl ClientFrame {
    /// The request id, for frames that expect a reply.
    pub fn rid(&self) -> Option<&Rid> {
        match self {
            ClientFrame::Sync { rid, .. }
            | ClientFrame::Send { rid, .. }
            | ClientFrame::Ping { rid }
            | ClientFrame::Mark { rid, .. }
            | ClientFrame::History { rid, .. }
            | ClientFrame::Conversations { rid, .. }
            | ClientFrame::Conversation { rid, .. }
            | ClientFrame::Subscribe { rid, .. }
            | ClientFrame::Unsubscribe { rid, .. }
            | ClientFrame::Topics { rid }
            | ClientFrame::Block { rid, .. }
            | ClientFrame::Unblock { rid, .. }
            | ClientFrame::Preferences { rid }
            | ClientFrame::SetPreferences { rid, .. }
            | ClientFrame::Act { rid, .. }
            | ClientFrame::Counts { rid, .. } => Some(rid),
            ClientFrame::Ack { .. } => None,
        }
    }
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome(Welcome),
    Reply(Reply),
    Message(Message),
    /// The user's unread numbers: after the welcome's backlog, and whenever
    /// one of them changes.
    Counts(Counts),
    /// The node is draining: connect again (to any node) after `after_ms`,
    /// and resume from your last seqs. The connection closes with 1001 next.
    Reconnect {
        after_ms: u64,
    },
    /// A private message this user sent was delivered or read.
    Receipt(Receipt),
    /// The server's copy of `stream` went back: its store lost the newest
    /// messages (a Redis failover with asynchronous replication), so seqs
    /// above `seq` may now be given to other messages. Take `seq` as your
    /// position in `stream`; what the store has after it follows, and may
    /// include messages you already have: recognise those by `id`.
    Reset {
        stream: Stream,
        seq: u64,
    },
    /// The user's preferences changed (on any node, from any tab or the
    /// server API): all of them.
    Preferences {
        preferences: Preferences,
    },
    /// Messages of this user whose state changed without a mark of theirs
    /// (one replaced by a newer message of its collapse group; snoozes
    /// that ended).
    Changed(Changed),
}

/// The `changed` frame: `ids` are now in `state`; `by` names the message
/// that caused it when there is one (the replacing message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct Changed {
    pub ids: Vec<Uuid>,
    pub state: ChangedState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Uuid>,
    /// With `acted`: the action taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// What happened to the messages of a [`Changed`] frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ChangedState {
    /// A newer message of the same collapse group (`by`) took its place:
    /// it left history and the counts.
    Replaced,
    /// Their snooze ended: unread (unseen) again, back in the default
    /// history and the counts.
    Unsnoozed,
    /// The user pressed one of its action buttons (`action`), on some
    /// tab or through the server API: read now, and no other act counts.
    Acted,
}

/// The first frame on every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Welcome {
    pub conn_id: Uuid,
    pub user_id: String,
    pub node_id: String,
    pub heartbeat_ms: u64,
    /// The newest seq in the user's inbox when the connection was accepted.
    pub last_seq: u64,
    /// The newest seq of the `all` stream when the connection was accepted.
    pub last_all_seq: u64,
}

/// The one answer to a request carrying a `rid`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields))]
pub struct Reply {
    /// Absent only when the request was too malformed to carry one.
    #[cfg_attr(feature = "ts", ts(optional = false))]
    pub rid: Option<Rid>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// `send`: the id of the stored message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// `send`: the seq the message got in the receiver's inbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// `send`: the receiver's preferences kept the message out (nothing
    /// stored; `seq` absent). The sender learns no more than a block would
    /// tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<bool>,
    /// `sync`: the inbox seq up to which everything has now been sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// `sync`: the same for the `all` stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_all_seq: Option<u64>,
    /// `mark`: how many messages really changed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<u64>,
    /// `counts`: the unread messages matching its filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u64>,
    /// `history`, `conversation`: the page, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<HistoryEntry>>,
    /// `conversations`: the page, the most recently active first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversations: Option<Vec<ConversationSummary>>,
    /// `preferences`, `set_preferences`: the user's preferences, all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<Preferences>,
    /// `topics`: the user's topics, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// `history`, `conversations`, `conversation`: the cursor of the next
    /// (older) page; `null` at the end.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "present_or_null"
    )]
    #[cfg_attr(feature = "ts", ts(type = "string | null"))]
    pub next: Option<Option<String>>,
}

/// `next` is absent from replies other than `history`'s, and `null` there
/// at the last page.
mod present_or_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<String>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().and_then(|n| n.as_ref()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

impl Reply {
    pub fn ok(rid: Rid) -> Self {
        Reply {
            rid: Some(rid),
            ok: true,
            ..Default::default()
        }
    }

    pub fn error(rid: Option<Rid>, code: ErrorCode, message: impl Into<String>) -> Self {
        Reply {
            rid,
            ok: false,
            error: Some(ErrorBody {
                code,
                message: message.into(),
            }),
            ..Default::default()
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// Machine-readable error codes, in replies and in HTTP error bodies.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be decoded or lacks a required field.
    BadRequest,
    /// The frame's `type` is not one this protocol version knows.
    UnknownType,
    /// A field has a value outside what is allowed (empty user id, too long…).
    InvalidField,
    /// The backend could not store or read; retry later.
    Unavailable,
    /// Missing or wrong credentials (HTTP API).
    Unauthorized,
    /// Something that should not happen; logged on the server.
    Internal,
    /// An idempotency key reused with a different request.
    Conflict,
    /// The receiver blocked the sender.
    Blocked,
    /// What the request names does not exist (HTTP 404: a route, a job).
    NotFound,
    /// Too many requests: over `limits.requests_per_sec` (HTTP 429), or
    /// too many connections for this user (handshake 429).
    RateLimited,
    /// An `act` on a message acted on before (the first act wins; HTTP
    /// 409).
    AlreadyActed,
}
