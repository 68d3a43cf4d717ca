//! The client's requests: one reply per frame (a request without `rid`,
//! `ack`, gets none). [`answer`] handles every frame that needs no open
//! connection, for the WebSocket and for `POST /v1/me/requests` alike; a
//! connection adds `sync` and pipelined `send`s. The operations themselves
//! live in herald-core services; a handler only maps a frame to a call and
//! its outcome to a reply.

use std::sync::Arc;

use herald_core::{CoreError, HistoryQuery, NewMessage, Selector, Turn};
use herald_protocol::{ClientFrame, ErrorCode, MarkSelector, MarkState, Reply, Rid, Stream};
use uuid::Uuid;

use super::connection::Connection;
use super::end::End;
use crate::node::Node;

/// Where a `sync` asks one stream to start: after this seq, at which the
/// client has the message with this id (when it says).
type SyncFrom = (u64, Option<Uuid>);

impl Connection {
    /// `sync` rewinds this connection; a `send` is pipelined; everything
    /// else is [`answer`]ed as it would be over `POST /v1/me/requests`.
    pub(super) async fn on_request(&mut self, request: ClientFrame) -> Result<(), End> {
        if let Some(rid) = request.rid() {
            if !self.node.limiter.allow(&self.info.user_id) {
                return self.refuse(rid.clone()).await;
            }
            self.refusals = 0;
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
                let from = self.info.user_id.clone();
                // Only an idempotency claim awaits before the append (the
                // block list is checked inside it).
                let turn = self.send_order.turn_if_needed(send.key.is_some());
                self.push_send(Box::pin(send.run(self.node.clone(), from, turn)));
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
        self.refusals += 1;
        let limits = &self.node.settings.limits;
        if limits.close_after_refusals > 0 && self.refusals >= limits.close_after_refusals {
            return Err(End::RateLimited);
        }
        let message = format!(
            "more than {} requests per second (limits.requests_per_sec); slow down",
            limits.requests_per_sec
        );
        self.reply(Reply::error(Some(rid), ErrorCode::RateLimited, message))
            .await
    }

    /// Rewinds the cursors to what the client says it has and replays the
    /// rest. Then the reply says up to where everything was sent.
    /// A `since` past the store's end, or at a seq where the store holds
    /// another message than `since_id`, means the store went back: the
    /// client is reset instead (`connections/rewind.rs`).
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
                    self.written.set(stream, since);
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

/// The reply to one request of `user` on `device` that needs no open
/// connection: everything but `sync` (which replays on a connection); a
/// `send` here is not pipelined. `None` for `ack`, which has no reply.
pub(super) async fn answer(
    node: &Arc<Node>,
    user: &str,
    device: &str,
    request: ClientFrame,
) -> Option<Reply> {
    let reply = match request {
        ClientFrame::Ping { rid } => Reply::ok(rid),
        ClientFrame::Ack { seq, stream } => {
            acknowledge(node, user, device, stream, seq).await;
            return None;
        }
        ClientFrame::Sync { rid, .. } => Reply::error(
            Some(rid),
            ErrorCode::BadRequest,
            "sync needs a connection: reconnect (/sse resumes from Last-Event-ID)",
        ),
        request @ ClientFrame::Send { .. } => {
            let send = PrivateSend::from_frame(request).expect("a send frame");
            send.run(node.clone(), user.to_owned(), None).await
        }
        ClientFrame::Mark {
            rid,
            state,
            selector,
        } => mark(node, user, rid, state, selector).await,
        ClientFrame::Subscribe { rid, topic } => {
            done(rid, node.topics.subscribe(user, &topic).await.map(drop))
        }
        ClientFrame::Unsubscribe { rid, topic } => {
            done(rid, node.topics.unsubscribe(user, &topic).await.map(drop))
        }
        ClientFrame::Block { rid, user: other } => {
            done(rid, node.blocklist.block(user, &other).await.map(drop))
        }
        ClientFrame::Unblock { rid, user: other } => {
            done(rid, node.blocklist.unblock(user, &other).await.map(drop))
        }
        ClientFrame::Topics { rid } => match node.topics.topics_of(user).await {
            Ok(topics) => Reply {
                topics: Some(topics),
                ..Reply::ok(rid)
            },
            Err(e) => error_reply(rid, e),
        },
        ClientFrame::History {
            rid,
            category,
            state,
            before,
            limit,
        } => {
            let query = HistoryQuery {
                category,
                state,
                before,
                limit: limit.map(|l| l as usize),
            };
            match node.inbox.history(user, query).await {
                Ok(page) => Reply {
                    messages: Some(page.messages),
                    next: Some(page.next),
                    ..Reply::ok(rid)
                },
                Err(e) => error_reply(rid, e),
            }
        }
        ClientFrame::Conversations { rid, before, limit } => {
            let limit = limit.map(|l| l as usize);
            match node
                .conversations
                .list(user, before.as_deref(), limit)
                .await
            {
                Ok(page) => Reply {
                    conversations: Some(page.conversations),
                    next: Some(page.next),
                    ..Reply::ok(rid)
                },
                Err(e) => error_reply(rid, e),
            }
        }
        ClientFrame::Conversation {
            rid,
            peer,
            before,
            limit,
        } => {
            let limit = limit.map(|l| l as usize);
            let page = node
                .conversations
                .page(user, &peer, before.as_deref(), limit);
            match page.await {
                Ok(page) => Reply {
                    messages: Some(page.messages),
                    next: Some(page.next),
                    ..Reply::ok(rid)
                },
                Err(e) => error_reply(rid, e),
            }
        }
    };
    Some(reply)
}

/// Moves the device's cursor, and for the inbox the user's delivered
/// watermark (senders of the private messages it passes get `delivered`
/// receipts). A failure only means the next connection replays a little
/// more (or a receipt shows later).
async fn acknowledge(node: &Node, user: &str, device: &str, stream: Stream, seq: u64) {
    let acked = match stream {
        Stream::Inbox => node.conversations.acknowledged(user, device, seq).await,
        Stream::All => node.store.ack(user, device, stream, seq).await.map(drop),
    };
    if let Err(e) = acked {
        tracing::warn!(%e, "ack not stored");
    }
}

async fn mark(
    node: &Node,
    user: &str,
    rid: Rid,
    state: MarkState,
    selector: MarkSelector,
) -> Reply {
    let outcome = match Selector::from_wire(selector, node.inbox.categories()) {
        Ok(selector) => node.inbox.mark(user, state, &selector).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(changed) => Reply {
            changed: Some(changed),
            ..Reply::ok(rid)
        },
        Err(e) => error_reply(rid, e),
    }
}

/// A `send` frame: a private message to `to`.
struct PrivateSend {
    rid: Rid,
    to: String,
    message: NewMessage,
    key: Option<String>,
}

impl PrivateSend {
    fn from_frame(frame: ClientFrame) -> Option<Self> {
        let ClientFrame::Send {
            rid,
            to,
            body,
            title,
            data,
            key,
            expires_at,
        } = frame
        else {
            return None;
        };
        let message = NewMessage {
            title,
            body,
            data,
            expires_at,
            ..Default::default()
        };
        Some(PrivateSend {
            rid,
            to,
            message,
            key,
        })
    }

    /// Stores the message from `from` in `turn`; the reply says how it
    /// went. Runs beside the connection (pipelined), so it owns what it
    /// needs.
    async fn run(self, node: Arc<Node>, from: String, turn: Option<Turn>) -> Reply {
        let PrivateSend {
            rid,
            to,
            message,
            key,
        } = self;
        match node
            .sender
            .send_private(&from, &to, message, key, turn)
            .await
        {
            Ok(sent) => {
                node.metrics
                    .accepted("ws", herald_protocol::Category::MAILBOX.as_str());
                Reply {
                    id: Some(sent.id),
                    seq: sent.stored.first().map(|s| s.seq),
                    ..Reply::ok(rid)
                }
            }
            Err(e) => error_reply(rid, e),
        }
    }
}

/// `ok`, or the error.
fn done(rid: Rid, outcome: Result<(), CoreError>) -> Reply {
    match outcome {
        Ok(()) => Reply::ok(rid),
        Err(e) => error_reply(rid, e),
    }
}

/// The reply for a failed operation.
pub(super) fn error_reply(rid: Rid, e: CoreError) -> Reply {
    let code = match e {
        CoreError::Unavailable(_) => ErrorCode::Unavailable,
        CoreError::Invalid(_) => ErrorCode::InvalidField,
        CoreError::Conflict(_) => ErrorCode::Conflict,
        CoreError::Blocked(_) => ErrorCode::Blocked,
    };
    Reply::error(Some(rid), code, e.to_string())
}
