//! The client's requests on an open connection: one handler per frame type,
//! each answering with exactly one reply (a request without `rid`, `ack`,
//! gets none). The operations themselves live in herald-core services; a
//! handler only maps a frame to a call and its outcome to a reply.

use std::sync::Arc;

use herald_core::{CoreError, HistoryQuery, NewMessage, Selector, Turn, WrittenSeq};
use herald_protocol::{ClientFrame, ErrorCode, MarkSelector, MarkState, Reply, Rid, Stream};

use super::connection::{Connection, End};
use crate::node::Node;

impl Connection {
    pub(super) async fn on_request(&mut self, request: ClientFrame) -> Result<(), End> {
        match request {
            ClientFrame::Ping { rid } => self.reply(Reply::ok(rid)).await,
            ClientFrame::Ack { seq, stream } => {
                self.ack(stream, seq).await;
                Ok(())
            }
            ClientFrame::Sync {
                rid,
                since,
                since_all,
            } => self.sync(rid, since, since_all).await,
            ClientFrame::Mark {
                rid,
                state,
                selector,
            } => self.mark(rid, state, selector).await,
            ClientFrame::Subscribe { rid, topic } => {
                let outcome = self.node.topics.subscribe(&self.info.user_id, &topic).await;
                self.reply(done(rid, outcome.map(|_| ()))).await
            }
            ClientFrame::Unsubscribe { rid, topic } => {
                let outcome = self
                    .node
                    .topics
                    .unsubscribe(&self.info.user_id, &topic)
                    .await;
                self.reply(done(rid, outcome.map(|_| ()))).await
            }
            ClientFrame::Block { rid, user } => {
                let outcome = self.node.blocklist.block(&self.info.user_id, &user).await;
                self.reply(done(rid, outcome.map(|_| ()))).await
            }
            ClientFrame::Unblock { rid, user } => {
                let outcome = self.node.blocklist.unblock(&self.info.user_id, &user).await;
                self.reply(done(rid, outcome.map(|_| ()))).await
            }
            ClientFrame::Topics { rid } => {
                let reply = match self.node.topics.topics_of(&self.info.user_id).await {
                    Ok(topics) => Reply {
                        topics: Some(topics),
                        ..Reply::ok(rid)
                    },
                    Err(e) => error_reply(rid, e),
                };
                self.reply(reply).await
            }
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
                self.history(rid, query).await
            }
            ClientFrame::Conversations { rid, before, limit } => {
                let user = &self.info.user_id;
                let limit = limit.map(|l| l as usize);
                let reply = match self
                    .node
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
                };
                self.reply(reply).await
            }
            ClientFrame::Conversation {
                rid,
                peer,
                before,
                limit,
            } => {
                let user = &self.info.user_id;
                let limit = limit.map(|l| l as usize);
                let page = self
                    .node
                    .conversations
                    .page(user, &peer, before.as_deref(), limit);
                let reply = match page.await {
                    Ok(page) => Reply {
                        messages: Some(page.messages),
                        next: Some(page.next),
                        ..Reply::ok(rid)
                    },
                    Err(e) => error_reply(rid, e),
                };
                self.reply(reply).await
            }
            ClientFrame::Send {
                rid,
                to,
                body,
                title,
                data,
                key,
                expires_at,
            } => {
                let message = NewMessage {
                    title,
                    body,
                    data,
                    expires_at,
                    ..Default::default()
                };
                let from = self.info.user_id.clone();
                // Only an idempotency claim awaits before the append (the
                // block list is checked inside it).
                let turn = self.send_order.turn_if_needed(key.is_some());
                let reply = send_private(self.node.clone(), from, rid, to, message, key, turn);
                self.push_send(Box::pin(reply));
                Ok(())
            }
        }
    }

    /// Moves the device's cursor, and for the inbox the user's delivered
    /// watermark (senders of the private messages it passes get
    /// `delivered` receipts). A failure only means the next connection
    /// replays a little more (or a receipt shows later).
    async fn ack(&mut self, stream: Stream, seq: u64) {
        let (node, user) = (&self.node, &self.info.user_id);
        if let Err(e) = node.store.ack(user, &self.info.device, stream, seq).await {
            tracing::warn!(%e, "ack not stored");
            return;
        }
        if stream == Stream::Inbox {
            if let Err(e) = node.conversations.acknowledged(user, seq).await {
                tracing::warn!(%e, "delivered watermark not raised");
            }
        }
    }

    /// Rewinds the cursors to what the client says it has and replays the
    /// rest. Then the reply says up to where everything was sent.
    async fn sync(&mut self, rid: Rid, since: u64, since_all: Option<u64>) -> Result<(), End> {
        let mut reply = Reply::ok(rid.clone());
        let wanted = [(Stream::Inbox, Some(since)), (Stream::All, since_all)];
        for (stream, since) in wanted {
            let last = match self.node.store.last_seq(&self.key(stream)).await {
                Ok(last) => last,
                Err(e) => return self.reply(error_reply(rid, e)).await,
            };
            if let Some(since) = since {
                *self.written.get_mut(stream) = WrittenSeq(since.min(last));
                self.catch_up(stream, last).await?;
            }
            match stream {
                Stream::Inbox => reply.last_seq = Some(last),
                Stream::All => reply.last_all_seq = Some(last),
            }
        }
        self.reply(reply).await
    }
}

impl Connection {
    async fn mark(
        &mut self,
        rid: Rid,
        state: MarkState,
        selector: MarkSelector,
    ) -> Result<(), End> {
        let node = &self.node;
        let outcome = match Selector::from_wire(selector, node.inbox.categories()) {
            Ok(selector) => node.inbox.mark(&self.info.user_id, state, &selector).await,
            Err(e) => Err(e),
        };
        let reply = match outcome {
            Ok(changed) => Reply {
                changed: Some(changed),
                ..Reply::ok(rid)
            },
            Err(e) => error_reply(rid, e),
        };
        self.reply(reply).await
    }

    async fn history(&mut self, rid: Rid, query: HistoryQuery) -> Result<(), End> {
        let reply = match self.node.inbox.history(&self.info.user_id, query).await {
            Ok(page) => Reply {
                messages: Some(page.messages),
                next: Some(page.next),
                ..Reply::ok(rid)
            },
            Err(e) => error_reply(rid, e),
        };
        self.reply(reply).await
    }
}

/// Stores one private message from `from`; the reply says how it went.
/// Runs beside the connection (pipelined), so it owns what it needs.
async fn send_private(
    node: Arc<Node>,
    from: String,
    rid: Rid,
    to: String,
    message: NewMessage,
    key: Option<String>,
    turn: Option<Turn>,
) -> Reply {
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
