//! Herald wire protocol, version 1.
//!
//! This crate is the leaf of the workspace: the frame types that cross a
//! WebSocket and the two codecs that put them on the wire. It does no I/O, so
//! the gateway, the load generator and any Rust client share one definition of
//! every frame. `docs/protocol.md` is the human-readable form of this crate.

mod codec;
mod frames;
mod message;
mod preferences;
mod tags;
#[cfg(feature = "ts")]
pub mod typescript;

pub use codec::{Codec, DecodeError, FrameKind};
pub use frames::{
    Changed, ChangedState, ClientFrame, ConversationSummary, Counts, ErrorBody, ErrorCode,
    HistoryEntry, MarkSelector, MarkState, MessageState, Receipt, ReceiptState, Reply, Rid,
    ServerFrame, StateFilter, UnreadBySeverity, UpTo, Welcome,
};
pub use message::{Action, Category, InvalidCategory, Message, Stream};
pub use preferences::{Channels, ChannelsPatch, Preferences, PreferencesPatch, QuietHours};
pub use tags::{check_tag, check_tags, InvalidSeverity, Severity, MAX_TAGS, MAX_TAG_LEN};

/// Subprotocol for JSON text frames (also the default when none is offered).
pub const SUBPROTOCOL_JSON: &str = "herald.v1.json";
/// Subprotocol for MessagePack binary frames (rmp-serde, named fields).
pub const SUBPROTOCOL_MSGPACK: &str = "herald.v1.msgpack";

/// WebSocket close codes Herald uses beyond the standard ones.
///
/// Every one of them but [`close_code::ERASED`] means "reconnect and `sync`
/// from your last seq": the server never drops a message, only a
/// connection.
pub mod close_code {
    /// No frame (not even a pong) arrived for two heartbeat intervals.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// The connection's outbound queue overflowed: the client reads too slowly.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The node is shutting down; connect again (to any node).
    pub const GOING_AWAY: u16 = 1001;
    /// The backend (store) failed in a way the connection cannot recover from.
    pub const BACKEND_UNAVAILABLE: u16 = 1011;
    /// A client frame was larger than `ws.max_message_size` (RFC 6455's
    /// "message too big").
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// A text frame that is not UTF-8 (RFC 6455's "invalid frame payload
    /// data").
    pub const INVALID_DATA: u16 = 1007;
    /// The client kept sending past its rate limit after `rate_limited`
    /// errors; reconnect later and slow down.
    pub const RATE_LIMITED: u16 = 4029;
    /// The user's data was erased (`DELETE /v1/users/{id}`): drop what the
    /// client holds of it; do not resume.
    pub const ERASED: u16 = 4003;
}
