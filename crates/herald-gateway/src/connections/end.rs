//! Why a connection ended, and the close frame each reason gets.

use axum::extract::ws::CloseFrame;
use herald_core::CoreError;
use herald_protocol::close_code;

/// Why a connection ended; decides the close frame.
#[derive(Debug)]
pub(super) enum End {
    /// The client closed or vanished.
    ClientGone,
    /// Reading failed (protocol violation, oversized frame).
    ReadError(String),
    /// Writing failed or stalled past the write timeout.
    WriteFailed,
    HeartbeatTimeout,
    SlowConsumer,
    Shutdown,
    /// The node drains; the client was told to reconnect.
    Drain,
    Backend(String),
    /// A frame over `ws.max_message_size`.
    TooBig(String),
    /// A text frame that is not UTF-8.
    NotUtf8(String),
    /// Requests kept coming past the rate limit.
    RateLimited,
    /// The user's data was erased.
    Erased,
}

impl End {
    pub(super) fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            End::ClientGone | End::WriteFailed => return None,
            End::ReadError(e) => (1002, e.as_str()),
            End::HeartbeatTimeout => (close_code::HEARTBEAT_TIMEOUT, "heartbeat timeout"),
            End::SlowConsumer => (
                close_code::SLOW_CONSUMER,
                "too far behind; reconnect and sync",
            ),
            End::Shutdown => (close_code::GOING_AWAY, "node shutting down; reconnect"),
            End::Drain => (close_code::GOING_AWAY, "node draining; reconnect"),
            End::Backend(_) => (
                close_code::BACKEND_UNAVAILABLE,
                "backend unavailable; reconnect",
            ),
            End::TooBig(_) => (close_code::MESSAGE_TOO_BIG, "message too big"),
            End::NotUtf8(_) => (close_code::INVALID_DATA, "text frame is not UTF-8"),
            End::RateLimited => (close_code::RATE_LIMITED, "rate limited; slow down"),
            End::Erased => (close_code::ERASED, "the user's data was erased"),
        };
        // Close reasons are limited to 123 bytes.
        let reason: String = reason.chars().take(100).collect();
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }

    pub(super) fn label(&self) -> &'static str {
        match self {
            End::ClientGone => "client_gone",
            End::ReadError(_) => "read_error",
            End::WriteFailed => "write_failed",
            End::HeartbeatTimeout => "heartbeat_timeout",
            End::SlowConsumer => "slow_consumer",
            End::Shutdown => "shutdown",
            End::Drain => "drain",
            End::Backend(_) => "backend",
            End::TooBig(_) => "too_big",
            End::NotUtf8(_) => "not_utf8",
            End::RateLimited => "rate_limited",
            End::Erased => "erased",
        }
    }
}

impl From<CoreError> for End {
    fn from(e: CoreError) -> Self {
        End::Backend(e.to_string())
    }
}

/// A failed read: a frame over the size limit is 1009, a text frame that
/// is not UTF-8 1007, anything else a protocol error (1002).
pub(super) fn read_error(e: axum::Error) -> End {
    let text = e.to_string();
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => End::TooBig(text),
        Some(tungstenite::Error::Utf8(_)) => End::NotUtf8(text),
        _ => End::ReadError(text),
    }
}
