//! Where a connection's frames go: a WebSocket, the body of a
//! Server-Sent Events response (`GET /sse`, for networks that block
//! WebSocket), or a Socket.IO session (`/socket.io/`, for the old
//! socket.io clients: `socketio/sink.rs`). The connection loop is the same
//! for all three; only writing, reading and closing differ.

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use herald_protocol::Stream;
use tokio::sync::mpsc;

use super::incoming::Incoming;
use super::socketio::SioSink;
use crate::metrics::TransportKind;

/// How long a closing connection waits for the client's close frame.
const CLOSE_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

// The WebSocket is the common case and sits inline in the connection as it
// did before SSE; boxing it would cost every connection an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Transport {
    Ws(WebSocket),
    Sse(SseSink),
    SocketIo(SioSink),
}

/// The sending end of an SSE response body. Events are collected in
/// `buf` and handed to the body once per flush.
pub(super) struct SseSink {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
    /// The position in each stream after the last message event: every
    /// message event's `id:` is `<inbox>.<all>`, so the browser's
    /// `Last-Event-ID` resumes both streams.
    positions: [u64; 2],
}

impl SseSink {
    /// A sink feeding `tx` (the response body's stream).
    pub(super) fn new(tx: mpsc::Sender<Bytes>) -> Self {
        SseSink {
            tx,
            buf: BytesMut::new(),
            positions: [0; 2],
        }
    }

    fn event(&mut self, data: &str, position: Option<(Stream, u64)>) {
        if let Some((stream, seq)) = position {
            let p = &mut self.positions[stream.index()];
            *p = (*p).max(seq);
            let [inbox, all] = self.positions;
            self.buf
                .extend_from_slice(format!("id: {inbox}.{all}\n").as_bytes());
        }
        // Compact JSON holds no raw newline, so one `data:` line suffices.
        self.buf.extend_from_slice(b"data: ");
        self.buf.extend_from_slice(data.as_bytes());
        self.buf.extend_from_slice(b"\n\n");
    }
}

impl Transport {
    /// The next client frame. An SSE client sends none (its requests come
    /// over `POST /v1/me/requests`): this waits until it goes away.
    pub(super) async fn recv(&mut self) -> Incoming {
        match self {
            Transport::Ws(socket) => socket.recv().await,
            Transport::Sse(sink) => {
                sink.tx.closed().await;
                None
            }
            Transport::SocketIo(sink) => sink.recv().await,
        }
    }

    /// The next ack the client called back for a message already written
    /// (a Socket.IO session's ack callbacks), as an `ack` frame; `None`
    /// when none is awaited (always, on the other transports: their
    /// client's acks are frames like the rest).
    pub(super) async fn next_ack(&mut self) -> Option<WsMessage> {
        match self {
            Transport::SocketIo(sink) => sink.next_ack().await,
            _ => None,
        }
    }

    /// The `transport` label of the connection's metrics.
    pub(super) fn kind(&self) -> TransportKind {
        match self {
            Transport::Ws(_) => TransportKind::Ws,
            Transport::Sse(_) => TransportKind::Sse,
            Transport::SocketIo(_) => TransportKind::SocketIo,
        }
    }

    /// Where the connection starts each stream (the positions the first
    /// message event's `id:` builds on).
    pub(super) fn start_at(&mut self, positions: [u64; 2]) {
        if let Transport::Sse(sink) = self {
            sink.positions = positions;
        }
    }

    /// Moves `stream`'s position back to `seq` (a `reset`): the next
    /// event's `id:` resumes from there.
    pub(super) fn rewind(&mut self, stream: Stream, seq: u64) {
        if let Transport::Sse(sink) = self {
            sink.positions[stream.index()] = seq;
        }
    }

    /// Whether silence from the client means it is gone (a WebSocket
    /// answers pings; an SSE client never writes; Engine.IO keeps its own
    /// heartbeat under a Socket.IO session).
    pub(super) fn expects_pongs(&self) -> bool {
        matches!(self, Transport::Ws(_))
    }

    /// Queues a frame; `position` is the (stream, seq) of a message frame.
    pub(super) async fn feed(
        &mut self,
        frame: WsMessage,
        position: Option<(Stream, u64)>,
    ) -> Result<(), axum::Error> {
        match self {
            Transport::Ws(socket) => socket.feed(frame).await,
            Transport::Sse(sink) => {
                match frame {
                    WsMessage::Text(text) => sink.event(text.as_str(), position),
                    WsMessage::Ping(_) => sink.buf.extend_from_slice(b": ping\n\n"),
                    // An SSE connection speaks JSON only.
                    other => tracing::warn!(?other, "frame not sent over SSE"),
                }
                Ok(())
            }
            Transport::SocketIo(sink) => sink.feed(frame, position),
        }
    }

    pub(super) async fn flush(&mut self) -> Result<(), axum::Error> {
        match self {
            Transport::Ws(socket) => socket.flush().await,
            // Socketioxide queues each emit on its own.
            Transport::SocketIo(_) => Ok(()),
            Transport::Sse(sink) if sink.buf.is_empty() => Ok(()),
            Transport::Sse(sink) => {
                let bytes = sink.buf.split().freeze();
                sink.tx.send(bytes).await.map_err(axum::Error::new)
            }
        }
    }

    /// Whether a drain's `reconnect` moves the client: a socket.io client
    /// does not reconnect after the server's disconnect (reason `io server
    /// disconnect`), and socketioxide cannot close the transport under a
    /// session without one. So a rebalance leaves Socket.IO sessions where
    /// they are, and a shutdown leaves their transports to the process's
    /// exit, after which the client reconnects by itself, elsewhere, from
    /// its device's cursor (see `close`).
    pub(super) fn moves_on_drain(&self) -> bool {
        !matches!(self, Transport::SocketIo(_))
    }

    /// Ends the connection: a close frame on a WebSocket; an SSE body just
    /// ends (the browser reconnects by itself); a Socket.IO session is
    /// disconnected, unless the node is `leaving` (shutting down: see
    /// `moves_on_drain`).
    ///
    /// After its close frame the server reads (and drops) what the client
    /// still sends until the client's close, for at most [`CLOSE_DRAIN`]:
    /// RFC 6455's closing handshake. Dropping the socket with unread bytes
    /// in its receive buffer (an `ack` the client sent while catching up)
    /// makes the kernel answer with a reset, and the client's kernel then
    /// throws away what the client had not read yet — the end of its
    /// backlog and the close frame with its code.
    pub(super) async fn close(&mut self, frame: Option<CloseFrame>, leaving: bool) {
        if let Transport::Ws(socket) = self {
            if let Some(frame) = frame {
                if socket.send(WsMessage::Close(Some(frame))).await.is_ok() {
                    let drain = async {
                        while let Some(Ok(msg)) = socket.recv().await {
                            if matches!(msg, WsMessage::Close(_)) {
                                break;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(CLOSE_DRAIN, drain).await;
                }
            }
            return;
        }
        if let Transport::SocketIo(sink) = self {
            if !leaving {
                sink.close();
            }
            return;
        }
        let _ = self.flush().await;
    }
}
