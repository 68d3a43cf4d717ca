//! One connection — a WebSocket, a Server-Sent Events stream or a
//! Socket.IO session (see `transport.rs`) — one task that reads client frames, writes
//! deliveries, and keeps the heartbeat.
//!
//! Delivery is exactly-once and in order per connection because every message
//! passes a [`WrittenSeq`](herald_core::WrittenSeq): live deliveries that
//! were already written are dropped, and a delivery that skips ahead makes
//! the connection read the missing seqs from the store first. So a message
//! appended while the backlog is being read is neither lost nor doubled.
//!
//! The connection's state lives in the types of `state/`; what it does with
//! them is split by concern below: the streams it writes (`delivery.rs`),
//! the counts it pushes (`counts.rs`), a store that went back
//! (`rewind.rs`) and the client's requests (`requests.rs`).

mod counts;
mod delivery;
mod requests;
mod rewind;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::FutureExt;
use herald_core::{
    conn_queue, ConnEvent, ConnHandle, ConnInfo, QueueReceiver, QuietWindow, TryRecvError,
    UserPreferences,
};
use herald_protocol::{Codec, FrameKind, Reply, ServerFrame, Stream};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use super::end::{read_error, End};
use super::socketio::SioSink;
use super::state::{CountsState, Liveness, Outbox, Positions, Refusals};
use super::transport::{SseSink, Transport};
use crate::node::Node;

/// Most ready events handled in one wake-up before flushing, so one busy
/// connection cannot hold its worker thread for long.
const MAX_EVENTS_PER_WAKE: usize = 256;

/// How long a draining connection waits for the acks of messages it
/// wrote (a Socket.IO session's ack callbacks; `drain`).
const ACK_SETTLE: Duration = Duration::from_secs(1);

/// One connection: where its frames go, who it is, and its state.
struct Connection {
    transport: Transport,
    node: Arc<Node>,
    info: ConnInfo,
    codec: Codec,
    positions: Positions,
    counts: CountsState,
    outbox: Outbox,
    liveness: Liveness,
    refusals: Refusals,
    /// The user's quiet hours, read at the start and kept from their
    /// `preferences` pushes: live messages inside them go out silent.
    /// Boxed: most users have none, and every idle connection pays for
    /// what is inline here.
    quiet: Option<Box<QuietWindow>>,
}

/// Runs one connection from upgrade to close.
///
/// The connection is boxed before the task's future exists, and every
/// phase is boxed too: a spawned task's future is allocated once, at the
/// size of its largest state, for the task's whole life (an async fn's
/// arguments even keep their slots after being moved out), so anything
/// inline here would cost every idle connection its full size. What stays
/// allocated between deliveries is the boxed connection and the idle
/// loop's state.
pub(super) fn run(
    socket: WebSocket,
    node: Arc<Node>,
    user: String,
    device: String,
    codec: Codec,
) -> impl Future<Output = ()> + Send + 'static {
    let transport = Transport::Ws(socket);
    lifetime(Connection::new(
        transport, node, user, device, codec, [None; 2],
    ))
}

/// Runs one Server-Sent Events connection (JSON frames into `sink`) until
/// the client goes away; `resume` is where each stream starts, where the
/// client said (else the device's acknowledged cursor).
pub(super) fn run_sse(
    sink: SseSink,
    node: Arc<Node>,
    user: String,
    device: String,
    resume: [Option<u64>; 2],
) -> impl Future<Output = ()> + Send + 'static {
    let transport = Transport::Sse(sink);
    lifetime(Connection::new(
        transport,
        node,
        user,
        device,
        Codec::Json,
        resume,
    ))
}

/// Runs one Socket.IO session (`socketio.rs`) until the client goes away:
/// JSON frames, turned into events by `sink`, from the device's
/// acknowledged cursor as a WebSocket connection starts.
pub(super) fn run_socketio(
    sink: SioSink,
    node: Arc<Node>,
    user: String,
    device: String,
) -> impl Future<Output = ()> + Send + 'static {
    let transport = Transport::SocketIo(sink);
    lifetime(Connection::new(
        transport,
        node,
        user,
        device,
        Codec::Json,
        [None; 2],
    ))
}

/// A new connection, its hub handle and the receiving end of its queue.
type Opened = (Box<Connection>, ConnHandle, QueueReceiver);

async fn lifetime((mut conn, handle, mut rx): Opened) {
    if let Err(end) = Box::pin(conn.open(handle)).await {
        Box::pin(conn.close(end)).await;
        return;
    }
    let end = Box::pin(conn.serve(&mut rx)).await;
    Box::pin(conn.finish(end)).await;
}

impl Connection {
    fn new(
        transport: Transport,
        node: Arc<Node>,
        user: String,
        device: String,
        codec: Codec,
        resume: [Option<u64>; 2],
    ) -> Opened {
        let info = ConnInfo {
            conn_id: Uuid::new_v4(),
            user_id: user,
            node_id: node.id.clone(),
            device,
            connected_at: OffsetDateTime::now_utc(),
        };
        let (tx, rx) = conn_queue(node.settings.ws.outbound_queue);
        let handle = ConnHandle {
            conn_id: info.conn_id,
            tx,
        };
        let conn = Box::new(Connection {
            transport,
            node,
            info,
            codec,
            positions: Positions::resuming(resume),
            counts: CountsState::default(),
            outbox: Outbox::default(),
            liveness: Liveness::new(),
            refusals: Refusals::default(),
            quiet: None,
        });
        (conn, handle, rx)
    }

    /// Registers the connection with the hub and presence.
    async fn open(&mut self, handle: ConnHandle) -> Result<(), End> {
        let node = self.node.clone();
        // Subscribe before reading the backlog so nothing falls between the two.
        if let Err(e) = node.hub.attach(&self.info.user_id, handle).await {
            return Err(End::Backend(e.to_string()));
        }
        if let Err(e) = node.presence.add(&self.info).await {
            tracing::warn!(%e, "presence add failed");
        }
        // Whom an announcement's unread fallback is for: users who connect.
        if let Some(webhooks) = &node.webhooks {
            if let Err(e) = webhooks.remember(&self.info.user_id).await {
                tracing::warn!(%e, "not added to the webhooks' audience");
            }
        }
        node.metrics
            .connection_opened(self.codec, self.transport.kind());
        Ok(())
    }
}

impl Connection {
    async fn serve(&mut self, rx: &mut QueueReceiver) -> End {
        if let Err(end) = Box::pin(self.start()).await {
            return end;
        }
        let heartbeat = Duration::from_millis(self.node.settings.ws.heartbeat_ms);
        let mut tick = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reading = self.outbox.takes_requests();
            // Biased: replies first, so a pushed `send` is polled (and so
            // takes its place in the store) before the next frame is read.
            // Handlers are boxed so their state exists only while they run
            // (see `run`).
            let mut read_frame = false;
            let step = tokio::select! {
                biased;
                Some(reply) = self.outbox.next_reply() => Box::pin(self.reply(reply)).await,
                event = rx.recv() => Box::pin(self.on_event(event)).await,
                frame = self.transport.recv(), if reading => {
                    read_frame = true;
                    Box::pin(self.on_socket(frame)).await
                }
                _ = tick.tick() => {
                    if self.transport.expects_pongs() && self.liveness.silent_for(heartbeat * 2) {
                        Err(End::HeartbeatTimeout)
                    } else {
                        Box::pin(self.on_tick()).await
                    }
                }
            };
            // The common case, one delivery and nothing else pending, goes
            // straight to the flush.
            let more = read_frame || self.outbox.sends_in_flight() > 0 || !rx.is_empty();
            let step = match step {
                Ok(()) if more => Box::pin(self.handle_ready(rx)).await,
                Ok(()) => Box::pin(self.end_wake()).await,
                Err(end) => Err(end),
            };
            if let Err(end) = step {
                return end;
            }
            self.counts.rearm_timer(&mut tick, heartbeat);
        }
    }

    /// Handles whatever else is ready now without waiting (replies,
    /// deliveries, frames already received), then flushes once.
    async fn handle_ready(&mut self, rx: &mut QueueReceiver) -> Result<(), End> {
        for _ in 0..MAX_EVENTS_PER_WAKE {
            if let Some(reply) = self.outbox.ready_reply() {
                self.reply(reply).await?;
                continue;
            }
            match rx.try_recv() {
                Ok(event) => {
                    self.on_event(Some(event)).await?;
                    continue;
                }
                Err(TryRecvError::Closed) => return self.on_event(None).await,
                Err(TryRecvError::Empty) => {}
            }
            if self.outbox.takes_requests() {
                if let Some(frame) = self.transport.recv().now_or_never() {
                    self.on_socket(frame).await?;
                    continue;
                }
            }
            break;
        }
        self.end_wake().await
    }

    /// What every wake-up ends with: the counts read once if they changed,
    /// then one flush.
    async fn end_wake(&mut self) -> Result<(), End> {
        if self.counts.take_changed() {
            self.refresh_counts().await?;
        }
        self.flush().await
    }

    async fn on_event(&mut self, event: Option<ConnEvent>) -> Result<(), End> {
        match event {
            Some(ConnEvent::Deliver(d)) => self.deliver(&d).await,
            Some(ConnEvent::Resync) => self.resync().await,
            Some(ConnEvent::CountsChanged) => {
                self.counts.mark_changed();
                Ok(())
            }
            Some(ConnEvent::Receipt(receipt)) => {
                self.send_frame(&ServerFrame::Receipt((*receipt).clone()))
                    .await
            }
            Some(ConnEvent::Preferences(stored)) => {
                self.quiet = UserPreferences::quiet_window(&stored).map(Box::new);
                let preferences = self.node.preferences.resolve(&stored);
                self.send_frame(&ServerFrame::Preferences { preferences })
                    .await
            }
            Some(ConnEvent::Changed(changed)) => {
                // The counts changed with it (in the same commit): fresh
                // ones follow at the end of this wake-up.
                self.counts.mark_changed();
                self.send_frame(&ServerFrame::Changed((*changed).clone()))
                    .await
            }
            // A rebalance cannot move a Socket.IO client (`transport.rs`):
            // it stays, served as before.
            Some(ConnEvent::Drain { .. })
                if !self.transport.moves_on_drain() && !self.node.is_shutting_down() =>
            {
                Ok(())
            }
            Some(ConnEvent::Drain { after_ms }) => self.drain(after_ms).await,
            // Nothing more is written: what is pending belonged to the
            // data just erased.
            Some(ConnEvent::Erased) => Err(End::Erased),
            Some(ConnEvent::Reregister) => {
                if let Err(e) = self.node.presence.add(&self.info).await {
                    tracing::warn!(%e, "presence add failed");
                }
                Ok(())
            }
            // The hub let go of us: our queue overflowed, or the node is
            // shutting down.
            None if self.node.is_shutting_down() => Err(End::Shutdown),
            None => Err(End::SlowConsumer),
        }
    }

    async fn on_socket(
        &mut self,
        frame: Option<Result<WsMessage, axum::Error>>,
    ) -> Result<(), End> {
        match frame {
            None => Err(End::ClientGone),
            Some(Err(e)) => Err(read_error(e)),
            Some(Ok(frame)) => {
                self.liveness.heard();
                self.on_frame(frame).await
            }
        }
    }

    /// Answers the pipelined `send`s still in flight (each was accepted or
    /// not: the client must learn which), then tells the client to
    /// reconnect and ends the connection.
    async fn drain(&mut self, after_ms: u64) -> Result<(), End> {
        while let Some(reply) = self.outbox.next_reply().await {
            self.reply(reply).await?;
        }
        // A Socket.IO client acks each message as it handles it, and does
        // not drop what it gets twice: the acks on their way are taken in,
        // so that its reconnect does not bring those messages again.
        let settle = tokio::time::sleep(ACK_SETTLE);
        tokio::pin!(settle);
        loop {
            tokio::select! {
                ack = self.transport.next_ack() => match ack {
                    Some(frame) => self.on_frame(frame).await?,
                    None => break,
                },
                _ = &mut settle => break,
            }
        }
        self.send_frame(&ServerFrame::Reconnect { after_ms })
            .await?;
        self.flush().await?;
        Err(End::Drain)
    }

    async fn reply(&mut self, reply: Reply) -> Result<(), End> {
        self.send_frame(&ServerFrame::Reply(reply)).await
    }

    async fn send_frame(&mut self, frame: &ServerFrame) -> Result<(), End> {
        self.write_encoded(self.codec.encode_server(frame), None)
            .await
    }

    /// Writes an encoded frame; `position` is a message frame's (stream,
    /// seq), which an SSE event carries in its `id:`.
    async fn write_encoded(
        &mut self,
        bytes: Bytes,
        position: Option<(Stream, u64)>,
    ) -> Result<(), End> {
        let frame = match self.codec.frame_kind() {
            FrameKind::Binary => WsMessage::Binary(bytes),
            FrameKind::Text => match Utf8Bytes::try_from(bytes) {
                Ok(text) => WsMessage::Text(text),
                Err(_) => unreachable!("the JSON codec produces UTF-8"),
            },
        };
        self.write_at(frame, position).await
    }

    /// Queues a frame in the socket's write buffer; the serve loop flushes
    /// once per wake-up.
    async fn write(&mut self, frame: WsMessage) -> Result<(), End> {
        self.write_at(frame, None).await
    }

    async fn write_at(
        &mut self,
        frame: WsMessage,
        position: Option<(Stream, u64)>,
    ) -> Result<(), End> {
        let timeout = Duration::from_millis(self.node.settings.ws.write_timeout_ms);
        self.outbox.wrote();
        match tokio::time::timeout(timeout, self.transport.feed(frame, position)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::WriteFailed),
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        if !self.outbox.take_unflushed() {
            return Ok(());
        }
        let timeout = Duration::from_millis(self.node.settings.ws.write_timeout_ms);
        match tokio::time::timeout(timeout, self.transport.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::WriteFailed),
        }
    }

    /// Unregisters the connection and says goodbye.
    async fn finish(self: Box<Self>, end: End) {
        let node = self.node.clone();
        node.hub.detach(&self.info.user_id, self.info.conn_id);
        if let Err(e) = node.presence.remove(&self.info).await {
            tracing::warn!(%e, "presence remove failed");
        }
        let code = end.close_frame().map(|f| f.code);
        node.metrics
            .connection_closed(self.codec, self.transport.kind(), end.label(), code);
        let detail = match &end {
            End::Backend(e) | End::ReadError(e) | End::TooBig(e) | End::NotUtf8(e) => e.as_str(),
            _ => "",
        };
        let seconds = (OffsetDateTime::now_utc() - self.info.connected_at).as_seconds_f64();
        tracing::info!(
            user = %self.info.user_id,
            conn = %self.info.conn_id,
            device = %self.info.device,
            reason = end.label(),
            seconds,
            detail,
            "connection closed"
        );
        self.close(end).await;
    }

    async fn close(mut self: Box<Self>, end: End) {
        // The close frame's write is bounded by the write timeout; the
        // closing handshake after it by its own bound (`transport.rs`).
        let timeout = Duration::from_millis(self.node.settings.ws.write_timeout_ms);
        let bound = timeout + Duration::from_secs(2);
        let leaving = self.node.is_shutting_down();
        let closing = self.transport.close(end.close_frame(), leaving);
        let _ = tokio::time::timeout(bound, closing).await;
    }
}
