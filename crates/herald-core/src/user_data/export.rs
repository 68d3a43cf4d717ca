//! The export document, written in chunks: everything but the inbox in
//! the first chunk, then the inbox [`EXPORT_PAGE`] messages at a time, read
//! from the store as each chunk is taken, so an export of a large inbox
//! never holds more than one page (the gateway streams the chunks as the
//! response body).

use std::sync::Arc;

use herald_protocol::{Message, Preferences, Stream};
use serde::Serialize;
use uuid::Uuid;

use crate::backend::{JobMessage, Store, WebhookEvent};
use crate::error::{CoreError, Result};
use crate::model::StreamKey;
use crate::read_state::ReadState;

/// Inbox messages per chunk of an export. A message is at most about 81
/// KiB (body, title and data at their limits), so a page stays under
/// 17 MB even then, and about 100 KB for typical notifications.
pub const EXPORT_PAGE: usize = 200;

/// The export but its inbox: what the first chunk holds.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ExportHead))]
#[derive(Serialize)]
pub(super) struct Head {
    pub(super) user: String,
    /// As `GET /v1/users/{id}/preferences` shows them.
    pub(super) preferences: Preferences,
    pub(super) topics: Vec<String>,
    pub(super) blocked: Vec<String>,
    /// The user's side of their conversations, most recent first.
    pub(super) conversations: Vec<Conversation>,
    /// The highest inbox seq a device of theirs acknowledged.
    pub(super) delivered: u64,
    /// Pending sends addressed to the user.
    pub(super) scheduled: Vec<Scheduled>,
    /// Webhook events of their messages, in any state.
    pub(super) webhooks: Vec<WebhookEvent>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ExportConversation))]
#[derive(Serialize)]
pub(super) struct Conversation {
    pub(super) peer: String,
    /// Unix µs.
    pub(super) last_activity_us: i64,
}

/// A scheduled send as the export shows it: without its other receivers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ExportScheduled))]
#[derive(Serialize)]
pub(super) struct Scheduled {
    pub(super) id: Uuid,
    /// Unix ms.
    pub(super) deliver_at: i64,
    pub(super) message: JobMessage,
}

/// One inbox message with the user's state of it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ExportEntry))]
#[derive(Serialize)]
struct Entry {
    #[serde(flatten)]
    message: Message,
    state: EntryState,
    /// A snoozed message: when it comes back (unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<i64>,
}

/// Where an inbox message stands for the user: the public states, and
/// the two that only the export shows (a deleted or expired message is
/// kept until it is trimmed, and the export holds everything).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ExportState))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum EntryState {
    Unseen,
    Seen,
    Read,
    Archived,
    Snoozed,
    Deleted,
    Expired,
}

impl EntryState {
    fn of(flags: &crate::read_state::Flags) -> Self {
        use herald_protocol::MessageState as Public;
        if flags.deleted {
            return EntryState::Deleted;
        }
        if flags.expired {
            return EntryState::Expired;
        }
        match flags.public() {
            Some(Public::Unseen) | None => EntryState::Unseen,
            Some(Public::Seen) => EntryState::Seen,
            Some(Public::Read) => EntryState::Read,
            Some(Public::Archived) => EntryState::Archived,
            Some(Public::Snoozed) => EntryState::Snoozed,
        }
    }
}

/// Everything Herald holds about a user, as `GET /v1/users/{id}/export`
/// answers it. (Only its OpenAPI schema is made from this type: the
/// export writes the document in chunks, the head and then the messages
/// a page at a time, and never builds it whole.)
#[cfg(feature = "openapi")]
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExportDocument {
    #[serde(flatten)]
    head: Head,
    /// The inbox, oldest first.
    messages: Vec<Entry>,
}

/// An export being written: take its chunks with [`Export::next_chunk`]
/// until `None`; together they are one JSON object.
pub struct Export {
    store: Arc<dyn Store>,
    inbox: StreamKey,
    state: ReadState,
    /// The first chunk, until taken.
    head: Option<Vec<u8>>,
    /// The seq of the last message written.
    after: u64,
    /// Messages written so far.
    written: u64,
    done: bool,
}

fn encoding(e: serde_json::Error) -> CoreError {
    CoreError::Unavailable(format!("export: {e}"))
}

impl Export {
    pub(super) fn new(
        store: Arc<dyn Store>,
        user: &str,
        head: &Head,
        state: ReadState,
    ) -> Result<Self> {
        let mut first = serde_json::to_vec(head).map_err(encoding)?;
        // The object stays open for the messages.
        first.pop();
        first.extend_from_slice(b",\"messages\":[");
        Ok(Export {
            store,
            inbox: StreamKey::inbox(user),
            state,
            head: Some(first),
            after: 0,
            written: 0,
            done: false,
        })
    }

    /// The next chunk of the document; `None` once it is complete. The
    /// first is everything but the inbox, each next one page of it (at
    /// most [`EXPORT_PAGE`] messages, oldest first), the last closes the
    /// document. A store error ends the export (the document is then
    /// incomplete: the caller must not pass it off as whole).
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(head) = self.head.take() {
            return Ok(Some(head));
        }
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .read_after(&self.inbox, self.after, EXPORT_PAGE)
            .await?;
        let Some(last) = page.last() else {
            self.done = true;
            return Ok(Some(b"]}".to_vec()));
        };
        self.after = last.seq;
        let marks = self.state.marks(Stream::Inbox);
        let mut chunk = Vec::with_capacity(page.len() * 256);
        for message in &page {
            if self.written > 0 {
                chunk.push(b',');
            }
            // The action the user took on it, as history shows it.
            let mut message = message.clone();
            message.acted = marks.acted.get(&message.seq).cloned();
            let entry = Entry {
                state: EntryState::of(&marks.flags(message.seq)),
                until: marks.snoozed.get(&message.seq).copied(),
                message,
            };
            serde_json::to_writer(&mut chunk, &entry).map_err(encoding)?;
            self.written += 1;
        }
        Ok(Some(chunk))
    }

    /// Messages written so far.
    pub fn messages_written(&self) -> u64 {
        self.written
    }
}
