//! Sending: the operation behind `POST /v1/messages`, its batch form and the
//! WebSocket `send`. The transports parse their input into [`NewMessage`]s
//! and map errors; everything else happens here, once.

use std::sync::Arc;

use herald_protocol::{Category, Message, Stream};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{CoreError, Result};
use crate::model::{validate_user_id, Draft, StreamKey};
use crate::store::Store;
use crate::validate::{MessageLimits, NewMessage};

/// Who receives a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// These users' inboxes (checked, sorted, without repeats).
    Users(Vec<String>),
    /// Everyone: stored once in the `all` stream.
    All,
}

impl Target {
    /// Inbox appends this target costs.
    pub fn appends(&self) -> usize {
        match self {
            Target::Users(users) => users.len(),
            Target::All => 1,
        }
    }
}

/// A checked message with its receivers, ready to store.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub target: Target,
    pub draft: Draft,
}

/// Where one message was stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredAt {
    pub stream: Stream,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub seq: u64,
}

/// The outcome of storing one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sent {
    pub id: Uuid,
    pub stored: Vec<StoredAt>,
}

/// Validates and stores messages.
pub struct Sender {
    store: Arc<dyn Store>,
    limits: MessageLimits,
}

impl Sender {
    pub fn new(store: Arc<dyn Store>, limits: MessageLimits) -> Self {
        Sender { store, limits }
    }

    pub fn limits(&self) -> &MessageLimits {
        &self.limits
    }

    /// Checks a message addressed to `users` (or to everyone when `None`).
    pub fn prepare(&self, users: Option<Vec<String>>, message: NewMessage) -> Result<Outgoing> {
        let target = match users {
            Some(users) => Target::Users(self.limits.recipients(users)?),
            None => Target::All,
        };
        let draft = self.limits.draft(message)?;
        Ok(Outgoing { target, draft })
    }

    /// Stores every message in each of its streams, all at once (the store
    /// groups concurrent appends; appends to one stream keep this order).
    /// Any failure fails the whole call; what was stored stays stored.
    pub async fn send(&self, messages: Vec<Outgoing>) -> Result<Vec<Sent>> {
        let mut appends = Vec::new();
        let mut shape = Vec::with_capacity(messages.len());
        for Outgoing { target, draft } in messages {
            let keys: Vec<StreamKey> = match target {
                Target::Users(users) => users.into_iter().map(StreamKey::Inbox).collect(),
                Target::All => vec![StreamKey::All],
            };
            shape.push((draft.id, keys.len()));
            for key in keys {
                let draft = draft.clone();
                appends.push(async move {
                    let message = self.store.append(&key, draft).await?;
                    Ok::<_, CoreError>(StoredAt {
                        stream: message.stream,
                        user: key.user().map(str::to_owned),
                        seq: message.seq,
                    })
                });
            }
        }
        // join_all polls in order first, so appends take their places in order.
        let mut stored = futures_util::future::join_all(appends).await.into_iter();
        let mut sent = Vec::with_capacity(shape.len());
        for (id, n) in shape {
            let stored = stored.by_ref().take(n).collect::<Result<Vec<_>>>()?;
            sent.push(Sent { id, stored });
        }
        Ok(sent)
    }

    /// A private message (category `mailbox`) from `from` to `to`.
    pub async fn send_private(&self, from: &str, to: &str, message: NewMessage) -> Result<Message> {
        validate_user_id(to).map_err(|e| CoreError::Invalid(format!("to: {e}")))?;
        let mut draft = self.limits.draft(NewMessage {
            category: Category::Mailbox.as_str().into(),
            ..message
        })?;
        draft.from = Some(from.to_owned());
        self.store.append(&StreamKey::inbox(to), draft).await
    }
}
