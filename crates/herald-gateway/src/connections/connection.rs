//! One connection — a WebSocket, or a Server-Sent Events stream (see
//! `transport.rs`) — one task that reads client frames, writes
//! deliveries, and keeps the heartbeat.
//!
//! Delivery is exactly-once and in order per connection because every message
//! passes a [`WrittenSeq`]: live deliveries that were already written are
//! dropped, and a delivery that skips ahead makes the connection read the
//! missing seqs from the store first. So a message appended while the backlog
//! is being read is neither lost nor doubled.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use herald_core::{
    conn_queue, ConnEvent, ConnHandle, ConnInfo, CountsSnapshot, Delivery, QueueReceiver,
    ReadState, SendOrder, StreamKey, TryRecvError, Verdict, WrittenSeqs,
};
use herald_protocol::{Codec, ErrorCode, FrameKind, Message, Reply, ServerFrame, Stream, Welcome};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

use super::counts::counts_frame;
use super::end::{read_error, End};
use super::transport::{SseSink, Transport};
use crate::node::Node;

/// Messages read from the store per round trip while catching up.
const PAGE: usize = 256;
/// Most `send`s of one connection being stored at once. Past it the
/// connection stops reading its socket until one is answered, so a client
/// that pipelines faster than the store keeps up is slowed by TCP.
pub const MAX_SENDS_IN_FLIGHT: usize = 64;
/// Most ready events handled in one wake-up before flushing, so one busy
/// connection cannot hold its worker thread for long.
const MAX_EVENTS_PER_WAKE: usize = 256;

/// The answer to one `send`, being worked out.
pub(super) type PendingReply = Pin<Box<dyn Future<Output = Reply> + Send>>;

pub(super) struct Connection {
    pub(super) transport: Transport,
    pub(super) node: Arc<Node>,
    pub(super) info: ConnInfo,
    pub(super) codec: Codec,
    /// What was written to this socket, per stream.
    pub(super) written: WrittenSeqs,
    /// The counts last pushed, as of which seqs; boxed and made after the
    /// backlog, so a connection in its handshake does not carry them.
    pub(super) counts: Option<Box<CountsSnapshot>>,
    /// The counts' `stale_at` moved: the serve loop re-arms its timer.
    pub(super) rearm: bool,
    /// A counts-changed event came: read the counts once, at the end of
    /// this wake-up, however many came (a burst of marks then costs one
    /// store read, and the queue empties at delivery speed).
    pub(super) counts_dirty: bool,
    pub(super) last_seen: Instant,
    /// Replies to the `send`s in flight, in request order. Boxed and made at
    /// the first `send`, so connections that only receive do not carry it.
    pub(super) sends: Option<Box<FuturesOrdered<PendingReply>>>,
    /// The request order of this connection's pipelined `send`s.
    pub(super) send_order: SendOrder,
    /// Frames written since the last flush.
    pub(super) unflushed: bool,
    /// Requests refused in a row for the rate limit.
    pub(super) refusals: u32,
    /// Where to start each stream instead of the device's acknowledged
    /// cursor (an SSE reconnect's `Last-Event-ID`, or its `since`).
    pub(super) resume: [Option<u64>; 2],
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
pub fn run(
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
            written: WrittenSeqs::default(),
            counts: None,
            rearm: false,
            counts_dirty: false,
            last_seen: Instant::now(),
            sends: None,
            send_order: SendOrder::default(),
            unflushed: false,
            refusals: 0,
            resume,
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
        node.metrics.connection_opened(self.codec);
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
            let reading = self.sends_in_flight() < MAX_SENDS_IN_FLIGHT;
            // Biased: replies first, so a pushed `send` is polled (and so
            // takes its place in the store) before the next frame is read.
            // Handlers are boxed so their state exists only while they run
            // (see `run`).
            let mut read_frame = false;
            let step = tokio::select! {
                biased;
                Some(reply) = next_reply(&mut self.sends) => Box::pin(self.reply(reply)).await,
                event = rx.recv() => Box::pin(self.on_event(event)).await,
                frame = self.transport.recv(), if reading => {
                    read_frame = true;
                    Box::pin(self.on_socket(frame)).await
                }
                _ = tick.tick() => {
                    if self.transport.expects_pongs() && self.last_seen.elapsed() >= heartbeat * 2 {
                        Err(End::HeartbeatTimeout)
                    } else {
                        Box::pin(self.on_tick()).await
                    }
                }
            };
            // The common case, one delivery and nothing else pending, goes
            // straight to the flush.
            let more = read_frame || self.sends_in_flight() > 0 || !rx.is_empty();
            let step = match step {
                Ok(()) if more => Box::pin(self.handle_ready(rx)).await,
                Ok(()) => Box::pin(self.end_wake()).await,
                Err(end) => Err(end),
            };
            if let Err(end) = step {
                return end;
            }
            if std::mem::take(&mut self.rearm) {
                self.rearm_for_expiry(&mut tick, heartbeat);
            }
        }
    }

    /// Handles whatever else is ready now without waiting (replies,
    /// deliveries, frames already received), then flushes once.
    async fn handle_ready(&mut self, rx: &mut QueueReceiver) -> Result<(), End> {
        for _ in 0..MAX_EVENTS_PER_WAKE {
            if let Some(Some(reply)) = self.sends.as_mut().and_then(|s| s.next().now_or_never()) {
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
            if self.sends_in_flight() < MAX_SENDS_IN_FLIGHT {
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
    pub(super) async fn end_wake(&mut self) -> Result<(), End> {
        if std::mem::take(&mut self.counts_dirty) {
            self.refresh_counts().await?;
        }
        self.flush().await
    }

    async fn on_event(&mut self, event: Option<ConnEvent>) -> Result<(), End> {
        match event {
            Some(ConnEvent::Deliver(d)) => self.deliver(&d).await,
            Some(ConnEvent::Resync) => self.resync().await,
            Some(ConnEvent::CountsChanged) => {
                self.counts_dirty = true;
                Ok(())
            }
            Some(ConnEvent::Receipt(receipt)) => {
                self.send_frame(&ServerFrame::Receipt((*receipt).clone()))
                    .await
            }
            Some(ConnEvent::Drain { after_ms }) => self.drain(after_ms).await,
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
                self.last_seen = Instant::now();
                self.on_frame(frame).await
            }
        }
    }

    fn sends_in_flight(&self) -> usize {
        self.sends.as_ref().map_or(0, |s| s.len())
    }

    /// Welcome, then everything after the device's acknowledged cursors,
    /// then the counts. The store is read once, concurrently: the cursors,
    /// and the counts with the read state and the seqs they include (which
    /// are the welcome's and the backlog's end).
    async fn start(&mut self) -> Result<(), End> {
        let store = &self.node.store;
        let (user, device) = (&self.info.user_id, &self.info.device);
        let (mut acked_inbox, mut acked_all, (snapshot, state)) = futures_util::try_join!(
            store.acked(user, device, Stream::Inbox),
            store.acked(user, device, Stream::All),
            self.node.inbox.counts_and_state(user),
        )?;
        let [inbox, all] = self.resume;
        acked_inbox = inbox.unwrap_or(acked_inbox);
        acked_all = all.unwrap_or(acked_all);
        self.transport.start_at([acked_inbox, acked_all]);
        self.written.set(Stream::Inbox, acked_inbox);
        self.written.set(Stream::All, acked_all);
        let last = snapshot.as_of;
        let welcome = ServerFrame::Welcome(Welcome {
            conn_id: self.info.conn_id,
            user_id: self.info.user_id.clone(),
            node_id: self.node.id.clone(),
            heartbeat_ms: self.node.settings.ws.heartbeat_ms,
            last_seq: last[Stream::Inbox.index()],
            last_all_seq: last[Stream::All.index()],
        });
        self.send_frame(&welcome).await?;
        let new_device = acked_all == 0 && self.resume[Stream::All.index()].is_none();
        for stream in Stream::ALL {
            let upto = last[stream.index()];
            if self.resume[stream.index()].is_some_and(|resume| resume > upto) {
                // The client had seqs the store no longer has.
                self.rewind(stream, upto).await?;
            } else if stream == Stream::All && new_device && upto > 0 {
                // Only the unread announcements, not the whole retained
                // `all` stream.
                self.catch_up_unread_announcements(upto, &state).await?;
            } else {
                self.catch_up(stream, upto).await?;
            }
        }
        // The backlog is in the counts already: set them only now. A cursor
        // another connection of this device moved past the counts' seqs
        // (read concurrently) means messages they do not include were
        // skipped: read the counts again.
        if acked_inbox > last[Stream::Inbox.index()] || acked_all > last[Stream::All.index()] {
            self.refresh_counts().await?;
        } else {
            self.write(counts_frame(&snapshot, self.codec)).await?;
            self.rearm = snapshot.stale_at.is_some();
            self.counts = Some(Box::new(snapshot));
        }
        self.flush().await
    }

    /// Writes the newest `ws.new_device_announcements` announcements up to
    /// `last` that are unread for this user, and moves the `all` cursor to
    /// `last`.
    async fn catch_up_unread_announcements(
        &mut self,
        last: u64,
        state: &ReadState,
    ) -> Result<(), End> {
        let marks = state.marks(Stream::All);
        let newest = self.node.settings.ws.new_device_announcements;
        let mut after = marks.read_upto.max(last.saturating_sub(newest));
        let now = time::OffsetDateTime::now_utc();
        while after < last {
            let page = self
                .node
                .store
                .read_after(&StreamKey::All, after, PAGE)
                .await?;
            let Some(end) = page.last().map(|m| m.seq) else {
                break;
            };
            for message in page.iter().take_while(|m| m.seq <= last) {
                if marks.flags(message.seq).counts_unread() && !message.expired(now) {
                    self.write_message(message).await?;
                }
            }
            after = end;
        }
        self.written.advance(Stream::All, last);
        Ok(())
    }

    /// Answers the pipelined `send`s still in flight (each was accepted or
    /// not: the client must learn which), then tells the client to
    /// reconnect and ends the connection.
    async fn drain(&mut self, after_ms: u64) -> Result<(), End> {
        while let Some(reply) = next_reply(&mut self.sends).await {
            self.reply(reply).await?;
        }
        self.send_frame(&ServerFrame::Reconnect { after_ms })
            .await?;
        self.flush().await?;
        Err(End::Drain)
    }

    pub(super) fn key(&self, stream: Stream) -> StreamKey {
        StreamKey::for_user(&self.info.user_id, stream)
    }

    /// Writes what the store has of `stream` after our cursor, up to `upto`.
    pub(super) async fn catch_up(&mut self, stream: Stream, upto: u64) -> Result<(), End> {
        let key = self.key(stream);
        while self.written.get(stream).0 < upto {
            let after = self.written.get(stream).0;
            let page = self.node.store.read_after(&key, after, PAGE).await?;
            let Some(last) = page.last().map(|m| m.seq) else {
                break;
            };
            for message in page.into_iter().take_while(|m| m.seq <= upto) {
                self.write_message(&message).await?;
            }
            // Retention may have dropped part of the range: skip past it.
            self.written.advance(stream, last.min(upto));
        }
        Ok(())
    }

    async fn write_message(&mut self, message: &Message) -> Result<(), End> {
        let seq = message.seq;
        if message.expired(time::OffsetDateTime::now_utc()) {
            // Not pushed any more; the cursor still moves past it.
            self.written.advance(message.stream, seq);
            return Ok(());
        }
        // Encoded per connection: catch-up reads are per user anyway.
        let frame = self
            .codec
            .encode_server(&ServerFrame::Message(message.clone()));
        self.write_encoded(frame, Some((message.stream, seq)))
            .await?;
        self.written.wrote(message.stream, seq, message.id);
        self.count_new(message).await
    }

    async fn deliver(&mut self, delivery: &Arc<Delivery>) -> Result<(), End> {
        let message = &delivery.message;
        match self.written.get(message.stream).judge(message.seq) {
            // The same seq with another id: the store went back.
            Verdict::Duplicate if self.holds_another(message) => {
                return self.rewind_live(message.stream).await;
            }
            Verdict::Duplicate => return Ok(()),
            Verdict::Next => {}
            // Missing seqs (a publish lost in a broker reconnect, or a
            // delivery that overtook the backlog): read them first.
            Verdict::Gap { .. } => self.catch_up(message.stream, message.seq - 1).await?,
        }
        if message.expires_at.is_some() && message.expired(time::OffsetDateTime::now_utc()) {
            self.written.advance(message.stream, message.seq);
            return Ok(());
        }
        let bytes = delivery.frame(self.codec);
        self.write_encoded(bytes, Some((message.stream, message.seq)))
            .await?;
        self.written.wrote(message.stream, message.seq, message.id);
        let latency = time::OffsetDateTime::now_utc() - message.ts;
        self.node
            .metrics
            .delivered(latency.try_into().unwrap_or_default());
        self.count_new(message).await
    }

    /// The broker may have missed messages: read whatever is newer than our
    /// cursors. Its reconnect may also have been a failover that lost the
    /// newest messages: then the client is reset (`connections/rewind.rs`).
    async fn resync(&mut self) -> Result<(), End> {
        for stream in Stream::ALL {
            let last = self.node.store.last_seq(&self.key(stream)).await?;
            let (position, ours) = (self.written.get(stream).0, self.written.last_id(stream));
            if self.store_went_back(stream, last, position, ours).await? {
                self.rewind(stream, last).await?;
                self.refresh_counts().await?;
            } else {
                self.catch_up(stream, last).await?;
            }
        }
        Ok(())
    }

    async fn on_frame(&mut self, frame: WsMessage) -> Result<(), End> {
        let (bytes, kind) = match frame {
            WsMessage::Text(t) => (Bytes::from(t), FrameKind::Text),
            WsMessage::Binary(b) => (b, FrameKind::Binary),
            // tungstenite answers pings itself; pongs only count as activity.
            WsMessage::Ping(_) | WsMessage::Pong(_) => return Ok(()),
            WsMessage::Close(_) => return Err(End::ClientGone),
        };
        if kind != self.codec.frame_kind() {
            let reply = Reply::error(
                None,
                ErrorCode::BadRequest,
                format!(
                    "this connection speaks {}: send {} frames",
                    self.codec.subprotocol(),
                    match self.codec.frame_kind() {
                        FrameKind::Text => "text",
                        FrameKind::Binary => "binary",
                    }
                ),
            );
            return self.send_frame(&ServerFrame::Reply(reply)).await;
        }
        let request = match self.codec.decode_client(&bytes) {
            Ok(request) => request,
            Err(e) => {
                let reply = Reply::error(e.rid, e.code, e.message);
                return self.send_frame(&ServerFrame::Reply(reply)).await;
            }
        };
        self.on_request(request).await
    }

    /// Queues a pipelined `send`'s reply, answered in request order.
    pub(super) fn push_send(&mut self, reply: PendingReply) {
        self.sends
            .get_or_insert_with(Default::default)
            .push_back(reply);
    }

    pub(super) async fn reply(&mut self, reply: Reply) -> Result<(), End> {
        self.send_frame(&ServerFrame::Reply(reply)).await
    }

    pub(super) async fn send_frame(&mut self, frame: &ServerFrame) -> Result<(), End> {
        self.write_encoded(self.codec.encode_server(frame), None)
            .await
    }

    /// Writes an encoded frame; `position` is a message frame's (stream,
    /// seq), which an SSE event carries in its `id:`.
    pub(super) async fn write_encoded(
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
    pub(super) async fn write(&mut self, frame: WsMessage) -> Result<(), End> {
        self.write_at(frame, None).await
    }

    async fn write_at(
        &mut self,
        frame: WsMessage,
        position: Option<(Stream, u64)>,
    ) -> Result<(), End> {
        let timeout = Duration::from_millis(self.node.settings.ws.write_timeout_ms);
        self.unflushed = true;
        match tokio::time::timeout(timeout, self.transport.feed(frame, position)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::WriteFailed),
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        if !std::mem::take(&mut self.unflushed) {
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
            .connection_closed(self.codec, end.label(), code);
        let detail = match &end {
            End::Backend(e) | End::ReadError(e) | End::TooBig(e) | End::NotUtf8(e) => e.as_str(),
            _ => "",
        };
        let seconds = (time::OffsetDateTime::now_utc() - self.info.connected_at).as_seconds_f64();
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
        let _ = tokio::time::timeout(bound, self.transport.close(end.close_frame())).await;
    }
}

/// The next answered `send`; `None` (the select branch sleeps) when none is
/// in flight.
async fn next_reply(sends: &mut Option<Box<FuturesOrdered<PendingReply>>>) -> Option<Reply> {
    sends.as_mut()?.next().await
}
