//! The client's requests on an open connection: one handler per frame type,
//! each answering with exactly one reply (a request without `rid`, `ack`,
//! gets none). The operations themselves live in herald-core services; a
//! handler only maps a frame to a call and its outcome to a reply.

use std::sync::Arc;

use herald_core::{CoreError, NewMessage, WrittenSeq};
use herald_protocol::{ClientFrame, ErrorCode, Reply, Rid, Stream};

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
            ClientFrame::Send {
                rid,
                to,
                body,
                title,
                data,
            } => {
                let message = NewMessage {
                    title,
                    body,
                    data,
                    ..Default::default()
                };
                let from = self.info.user_id.clone();
                let reply = send_private(self.node.clone(), from, rid, to, message);
                self.push_send(Box::pin(reply));
                Ok(())
            }
        }
    }

    /// Moves the device's cursor; a failure only means the next connection
    /// replays a little more.
    async fn ack(&mut self, stream: Stream, seq: u64) {
        let store = &self.node.store;
        if let Err(e) = store
            .ack(&self.info.user_id, &self.info.device, stream, seq)
            .await
        {
            tracing::warn!(%e, "ack not stored");
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

/// Stores one private message from `from`; the reply says how it went.
/// Runs beside the connection (pipelined), so it owns what it needs.
async fn send_private(
    node: Arc<Node>,
    from: String,
    rid: Rid,
    to: String,
    message: NewMessage,
) -> Reply {
    match node.sender.send_private(&from, &to, message).await {
        Ok(message) => {
            node.metrics.appended("ws");
            Reply {
                id: Some(message.id),
                seq: Some(message.seq),
                ..Reply::ok(rid)
            }
        }
        Err(e) => error_reply(rid, e),
    }
}

/// The reply for a failed operation.
pub(super) fn error_reply(rid: Rid, e: CoreError) -> Reply {
    let code = match e {
        CoreError::Unavailable(_) => ErrorCode::Unavailable,
        CoreError::Invalid(_) => ErrorCode::InvalidField,
    };
    Reply::error(Some(rid), code, e.to_string())
}
