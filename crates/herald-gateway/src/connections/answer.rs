//! The replies to the client's requests that need no open connection,
//! for the WebSocket and for `POST /v1/me/requests` alike: one reply per
//! frame (a request without `rid`, `ack`, gets none). A connection adds
//! `sync` and pipelined `send`s (`connection/requests.rs`). The operations
//! themselves live in herald-core services; a handler only maps a frame to
//! a call and its outcome to a reply.

use std::sync::Arc;

use herald_core::{
    Conversations, CoreError, HistoryQuery, Inbox, NewMessage, Selector, Store, TagFilter, Turn,
};
use herald_protocol::{
    Category, ClientFrame, ErrorCode, MarkSelector, MarkState, Preferences, Reply, Rid, Stream,
};

use crate::node::Node;

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
            acknowledge(&node.conversations, &*node.store, user, device, stream, seq).await;
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
            until,
            tags,
            severity,
        } => {
            let filter = TagFilter::check(tags, severity.as_deref());
            mark(&node.inbox, user, rid, state, selector, until, filter).await
        }
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
        ClientFrame::Preferences { rid } => preferences(rid, node.preferences.get(user).await),
        ClientFrame::SetPreferences {
            rid,
            preferences: patch,
        } => preferences(rid, node.preferences.update(user, &patch).await),
        ClientFrame::Act {
            rid,
            message,
            action,
        } => {
            let acted = node.inbox.act(user, message, &action).await;
            node.metrics.act(&acted);
            done(rid, acted.map(drop))
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
            snoozed,
            tags,
            severity,
        } => {
            let filter = TagFilter::check(tags, severity.as_deref());
            let history = |filter| {
                let query = HistoryQuery {
                    category,
                    state,
                    before,
                    limit: limit.map(|l| l as usize),
                    snoozed: snoozed.unwrap_or(false),
                    filter,
                };
                node.inbox.history(user, query)
            };
            let page = match filter {
                Ok(filter) => history(filter).await,
                Err(e) => Err(e),
            };
            match page {
                Ok(page) => Reply {
                    messages: Some(page.messages),
                    next: Some(page.next),
                    ..Reply::ok(rid)
                },
                Err(e) => error_reply(rid, e),
            }
        }
        ClientFrame::Counts {
            rid,
            tags,
            severity,
        } => {
            let unread = match TagFilter::check(tags, severity.as_deref()) {
                Ok(filter) => node.inbox.unread_matching(user, &filter).await,
                Err(e) => Err(e),
            };
            match unread {
                Ok(unread) => Reply {
                    unread: Some(unread),
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
async fn acknowledge(
    conversations: &Conversations,
    store: &dyn Store,
    user: &str,
    device: &str,
    stream: Stream,
    seq: u64,
) {
    let acked = match stream {
        Stream::Inbox => conversations.acknowledged(user, device, seq).await,
        Stream::All => store.ack(user, device, stream, seq).await.map(drop),
    };
    if let Err(e) = acked {
        tracing::warn!(%e, "ack not stored");
    }
}

async fn mark(
    inbox: &Inbox,
    user: &str,
    rid: Rid,
    state: MarkState,
    selector: MarkSelector,
    until: Option<i64>,
    filter: herald_core::Result<TagFilter>,
) -> Reply {
    let checked = filter.and_then(|f| Ok((Selector::from_wire(selector, inbox.categories())?, f)));
    let outcome = match checked {
        Ok((selector, filter)) => {
            inbox
                .mark_where(user, state, &selector, until, &filter)
                .await
        }
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
pub(super) struct PrivateSend {
    rid: Rid,
    to: String,
    message: NewMessage,
    key: Option<String>,
}

impl PrivateSend {
    pub(super) fn from_frame(frame: ClientFrame) -> Option<Self> {
        let ClientFrame::Send {
            rid,
            to,
            body,
            title,
            data,
            key,
            expires_at,
            group_key,
            tags,
            severity,
        } = frame
        else {
            return None;
        };
        let message = NewMessage {
            title,
            body,
            data,
            expires_at,
            group_key,
            tags,
            severity,
            ..Default::default()
        };
        Some(PrivateSend {
            rid,
            to,
            message,
            key,
        })
    }

    /// Whether the send awaits anything before its append: only an
    /// idempotency claim does (the block list is checked inside it).
    pub(super) fn awaits_checks(&self) -> bool {
        self.key.is_some()
    }

    /// Stores the message from `from` in `turn`; the reply says how it
    /// went. Runs beside the connection (pipelined), so it owns what it
    /// needs.
    pub(super) async fn run(self, node: Arc<Node>, from: String, turn: Option<Turn>) -> Reply {
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
                node.metrics.accepted("ws", Category::MAILBOX.as_str());
                Reply {
                    id: Some(sent.id),
                    seq: sent.stored.first().map(|s| s.seq),
                    skipped: (!sent.skipped.is_empty()).then_some(true),
                    ..Reply::ok(rid)
                }
            }
            Err(e) => error_reply(rid, e),
        }
    }
}

/// `ok`, or the error.
/// The reply of `preferences` and `set_preferences`: all of them.
fn preferences(rid: Rid, outcome: Result<Preferences, CoreError>) -> Reply {
    match outcome {
        Ok(preferences) => Reply {
            preferences: Some(preferences),
            ..Reply::ok(rid)
        },
        Err(e) => error_reply(rid, e),
    }
}

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
        CoreError::Blocked(_) | CoreError::Skipped(_) => ErrorCode::Blocked,
        CoreError::NotFound(_) => ErrorCode::NotFound,
        CoreError::AlreadyActed(_) => ErrorCode::AlreadyActed,
    };
    Reply::error(Some(rid), code, e.to_string())
}
