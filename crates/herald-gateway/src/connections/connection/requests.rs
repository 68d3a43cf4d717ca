//! The client's frames on a connection: one reply per request (a request
//! without `rid`, `ack`, gets none). `sync` rewinds the connection, a
//! `send` is pipelined, and everything else is [`answer`]ed as it would be
//! over `POST /v1/me/requests`.

use axum::extract::ws::Message as WsMessage;
use bytes::Bytes;
use herald_protocol::{ClientFrame, ErrorCode, FrameKind, Reply, Rid, ServerFrame, Stream};
use uuid::Uuid;

use super::Connection;
use crate::connections::answer::{answer, error_reply, PrivateSend};
use crate::connections::end::End;

/// Where a `sync` asks one stream to start: after this seq, at which the
/// client has the message with this id (when it says).
type SyncFrom = (u64, Option<Uuid>);

impl Connection {
    pub(super) async fn on_frame(&mut self, frame: WsMessage) -> Result<(), End> {
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

    async fn on_request(&mut self, request: ClientFrame) -> Result<(), End> {
        if let Some(rid) = request.rid() {
            if !self.node.limiter.allow(&self.info.user_id) {
                return self.refuse(rid.clone()).await;
            }
            self.refusals.reset();
        }
        match request {
            ClientFrame::Sync {
                rid,
                since,
                since_all,
                since_id,
                since_all_id,
            } => {
                let wanted = [
                    (Stream::Inbox, Some((since, since_id))),
                    (Stream::All, since_all.map(|s| (s, since_all_id))),
                ];
                self.sync(rid, wanted).await
            }
            ClientFrame::Send { .. } => {
                let send = PrivateSend::from_frame(request).expect("a send frame");
                let (node, from) = (self.node.clone(), self.info.user_id.clone());
                self.outbox.push_send(send.awaits_checks(), |turn| {
                    Box::pin(send.run(node, from, turn))
                });
                Ok(())
            }
            request => {
                let (user, device) = (&self.info.user_id, &self.info.device);
                match answer(&self.node, user, device, request).await {
                    Some(reply) => self.reply(reply).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Answers a request over the rate limit with `rate_limited`; after
    /// `limits.close_after_refusals` in a row, closes with 4029.
    async fn refuse(&mut self, rid: Rid) -> Result<(), End> {
        let limits = &self.node.settings.limits;
        if self.refusals.refuse(limits.close_after_refusals) {
            return Err(End::RateLimited);
        }
        let message = crate::limits::over_rate(limits);
        self.reply(Reply::error(Some(rid), ErrorCode::RateLimited, message))
            .await
    }

    /// Rewinds the cursors to what the client says it has and replays the
    /// rest. Then the reply says up to where everything was sent.
    /// A `since` past the store's end, or at a seq where the store holds
    /// another message than `since_id`, means the store went back: the
    /// client is reset instead (`rewind.rs`).
    async fn sync(&mut self, rid: Rid, wanted: [(Stream, Option<SyncFrom>); 2]) -> Result<(), End> {
        let mut reply = Reply::ok(rid.clone());
        let mut reset = false;
        for (stream, since) in wanted {
            let last = match self.node.store.last_seq(&self.key(stream)).await {
                Ok(last) => last,
                Err(e) => return self.reply(error_reply(rid, e)).await,
            };
            if let Some((since, since_id)) = since {
                if self.store_went_back(stream, last, since, since_id).await? {
                    self.rewind(stream, last).await?;
                    reset = true;
                } else {
                    self.positions.set(stream, since);
                    self.catch_up(stream, last).await?;
                }
            }
            match stream {
                Stream::Inbox => reply.last_seq = Some(last),
                Stream::All => reply.last_all_seq = Some(last),
            }
        }
        if reset {
            self.refresh_counts().await?;
        }
        self.reply(reply).await
    }
}
