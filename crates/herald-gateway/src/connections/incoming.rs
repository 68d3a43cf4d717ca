//! What a transport's read side yields. Its own file because the Socket.IO
//! sink yields it too, and the transport holds that sink.

use axum::extract::ws::Message as WsMessage;

/// A client frame, an error, or `None` when the client is gone.
pub(super) type Incoming = Option<Result<WsMessage, axum::Error>>;
