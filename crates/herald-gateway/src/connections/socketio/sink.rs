//! The Socket.IO side of a connection's transport: the frames the
//! connection loop writes become Socket.IO events, and the events an old
//! client emits become the frames a native client would have sent.
//!
//! Frame → event: a message becomes `todo_message` (a private message,
//! category `mailbox`) or `message` (everything else), emitted with an ack
//! callback; the client calling it is an `ack` frame for that message's
//! stream and seq, so the device's cursor moves as a native client's does
//! (acks that come back together: one frame per stream, the highest seq).
//! The reply to a `todo` goes to that `todo`'s ack callback; every other
//! frame (`welcome`, `counts`, `receipt`, `changed`, `preferences`,
//! `reset`, `reconnect`) is emitted under its `type`, without it.
//!
//! The loop writes encoded JSON frames (a delivery is encoded once for all
//! connections); this side parses a frame back before emitting it. The
//! endpoint exists for a migration, and a parse per event is what keeping
//! one connection loop for every transport costs it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use axum::extract::ws::Message as WsMessage;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use herald_protocol::Stream;
use serde_json::{Map, Value};
use socketioxide::extract::{AckSender, SocketRef};
use tokio::sync::mpsc;

use crate::connections::incoming::Incoming;

/// What the socket's event handlers hand the connection loop.
///
/// Kept at 24 bytes (a `todo` is boxed): a tokio channel allocates its
/// slots 32 at a time when it is made, so every session's event channel
/// held 32 of these, 2.3 KiB while `Todo` was inline, 0.8 KiB now.
pub(crate) enum SioIn {
    /// A client frame, JSON (`ack`, or what `user_login` asks for).
    Frame(String),
    /// A `todo` as a `send` frame.
    Todo(Box<Todo>),
    /// The client disconnected (or its transport timed out).
    Gone,
}

const _: () = assert!(std::mem::size_of::<SioIn>() <= 24);

/// A `todo` as a `send` frame with request id `rid`; its reply goes to
/// `ack`.
pub(crate) struct Todo {
    pub(crate) rid: String,
    pub(crate) frame: String,
    pub(crate) ack: AckSender,
}

/// An emitted message whose ack callback the client may call: yields the
/// (stream, seq) to acknowledge when it did.
type PendingAck = Pin<Box<dyn Future<Output = Option<(Stream, u64)>> + Send>>;

/// Where a Socket.IO connection's frames go, and where its events come from.
pub(crate) struct SioSink {
    socket: SocketRef,
    incoming: mpsc::Receiver<SioIn>,
    /// Messages emitted whose ack has not come back yet (bounded by the
    /// endpoint's ack timeout).
    acks: FuturesUnordered<PendingAck>,
    /// The highest seq per stream whose ack came back and is not yet
    /// handed to the loop (0: none): acks that arrive together become one
    /// `ack` frame per stream, as a native client's do.
    acked: [u64; Stream::ALL.len()],
    /// The ack callbacks of the `todo`s whose reply is still to come.
    todos: HashMap<String, AckSender>,
}

impl SioSink {
    pub(crate) fn new(socket: SocketRef, incoming: mpsc::Receiver<SioIn>) -> Self {
        SioSink {
            socket,
            incoming,
            acks: FuturesUnordered::new(),
            acked: [0; Stream::ALL.len()],
            todos: HashMap::new(),
        }
    }

    /// The next client frame: an ack the client called back, or what its
    /// events became; `None` once it is gone.
    pub(crate) async fn recv(&mut self) -> Incoming {
        loop {
            while let Some(Some(acked)) = self.acks.next().now_or_never() {
                self.note_ack(acked);
            }
            if let Some(frame) = self.take_acked() {
                return Some(Ok(frame));
            }
            tokio::select! {
                biased;
                Some(acked) = self.acks.next(), if !self.acks.is_empty() => self.note_ack(acked),
                next = self.incoming.recv() => {
                    return match next {
                        None | Some(SioIn::Gone) => None,
                        Some(SioIn::Frame(frame)) => Some(Ok(WsMessage::Text(frame.into()))),
                        Some(SioIn::Todo(todo)) => {
                            let Todo { rid, frame, ack } = *todo;
                            self.todos.insert(rid, ack);
                            Some(Ok(WsMessage::Text(frame.into())))
                        }
                    };
                }
            }
        }
    }

    /// The next ack frame from the acks on their way only (the client's
    /// other events wait); `None` once no ack is awaited.
    pub(crate) async fn next_ack(&mut self) -> Option<WsMessage> {
        loop {
            if let Some(frame) = self.take_acked() {
                return Some(frame);
            }
            let acked = self.acks.next().await?;
            self.note_ack(acked);
        }
    }

    /// An `ack` frame for the highest seq acked of one stream, if any.
    fn take_acked(&mut self) -> Option<WsMessage> {
        Stream::ALL.into_iter().find_map(|stream| {
            let seq = std::mem::take(&mut self.acked[stream.index()]);
            (seq > 0).then(|| {
                let frame = serde_json::json!({"type": "ack", "stream": stream, "seq": seq});
                WsMessage::Text(frame.to_string().into())
            })
        })
    }

    fn note_ack(&mut self, acked: Option<(Stream, u64)>) {
        if let Some((stream, seq)) = acked {
            let at = &mut self.acked[stream.index()];
            *at = (*at).max(seq);
        }
    }

    /// Emits one frame as its event; `position` is a message's (stream, seq).
    pub(crate) fn feed(
        &mut self,
        frame: WsMessage,
        position: Option<(Stream, u64)>,
    ) -> Result<(), axum::Error> {
        let WsMessage::Text(text) = frame else {
            // Pings: Engine.IO keeps its own heartbeat.
            return Ok(());
        };
        let mut frame: Map<String, Value> =
            serde_json::from_str(text.as_str()).map_err(axum::Error::new)?;
        let kind = match frame.remove("type") {
            Some(Value::String(kind)) => kind,
            _ => return Err(axum::Error::new("a frame without a type")),
        };
        match (kind.as_str(), position) {
            ("message", Some(position)) => self.emit_message(frame, position),
            ("reply", _) => self.answer(frame),
            (kind, _) => self.socket.emit(kind, &frame).map_err(axum::Error::new),
        }
    }

    fn emit_message(
        &mut self,
        message: Map<String, Value>,
        position: (Stream, u64),
    ) -> Result<(), axum::Error> {
        let private = message.get("category").and_then(Value::as_str) == Some("mailbox");
        let (event, payload) = if private {
            ("todo_message", todo_message(message))
        } else {
            ("message", message)
        };
        let ack = self
            .socket
            .emit_with_ack::<_, Value>(event, &payload)
            .map_err(axum::Error::new)?;
        self.acks.push(Box::pin(async move {
            match ack.await {
                // Any answer is the ack, whatever the client passed to
                // the callback (nothing, usually).
                Ok(_) | Err(socketioxide::AckError::Decode(_)) => Some(position),
                Err(_) => None,
            }
        }));
        Ok(())
    }

    /// A reply: to its `todo`'s ack callback as `{id, seq}` or `{error,
    /// message}`; a reply to anything else is emitted as `reply`.
    fn answer(&mut self, reply: Map<String, Value>) -> Result<(), axum::Error> {
        let ack = match reply.get("rid") {
            Some(Value::String(rid)) => self.todos.remove(rid),
            _ => None,
        };
        let Some(ack) = ack else {
            return self.socket.emit("reply", &reply).map_err(axum::Error::new);
        };
        let mut answer = Map::new();
        if reply.get("ok") == Some(&Value::Bool(true)) {
            for field in ["id", "seq", "skipped"] {
                if let Some(value) = reply.get(field) {
                    answer.insert(field.into(), value.clone());
                }
            }
        } else if let Some(Value::Object(error)) = reply.get("error") {
            for (from, to) in [("code", "error"), ("message", "message")] {
                if let Some(value) = error.get(from) {
                    answer.insert(to.into(), value.clone());
                }
            }
        }
        ack.send(&answer).map_err(axum::Error::new)
    }

    /// Ends the Socket.IO session (a `disconnect` packet, then the
    /// transport's close).
    pub(crate) fn close(&mut self) {
        let _ = self.socket.clone().disconnect();
    }
}

/// A private message as `todo_message`: the native message, with the
/// fields of the `todo` it came from (its `data`) beside them, so an old
/// client reads `receiver_id` and its own fields where it always did. A
/// native field wins over a `todo` field of the same name.
fn todo_message(mut message: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Object(data)) = message.get("data").cloned() {
        for (field, value) in data {
            message.entry(field).or_insert(value);
        }
    }
    message
}
