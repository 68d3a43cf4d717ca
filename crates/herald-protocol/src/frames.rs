//! Every frame of protocol v1. Each frame is an object with a `type` field.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::{Message, Stream};

/// A request id chosen by the client; echoed in the one reply to that request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Send everything after `since` in the inbox (and after `since_all` in
    /// the `all` stream when given), in order, then continue live.
    Sync {
        rid: Rid,
        since: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_all: Option<u64>,
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
        data: Option<serde_json::Value>,
    },
    /// An application-level ping; answered with an `ok` reply.
    Ping { rid: Rid },
}

impl ClientFrame {
    /// The request id, for frames that expect a reply.
    pub fn rid(&self) -> Option<&Rid> {
        match self {
            ClientFrame::Sync { rid, .. }
            | ClientFrame::Send { rid, .. }
            | ClientFrame::Ping { rid } => Some(rid),
            ClientFrame::Ack { .. } => None,
        }
    }
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome(Welcome),
    Reply(Reply),
    Message(Message),
}

/// The first frame on every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Reply {
    /// Absent only when the request was too malformed to carry one.
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
    /// `sync`: the inbox seq up to which everything has now been sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// `sync`: the same for the `all` stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_all_seq: Option<u64>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// Machine-readable error codes, in replies and in HTTP error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}
