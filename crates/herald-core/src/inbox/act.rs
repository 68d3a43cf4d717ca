//! Action buttons, the receiver's side: an `act` presses one button of a
//! message in the user's inbox or announcements. It marks the message
//! read and records the action in the read state (`StreamMarks::acted`),
//! in one compare-and-set on the user's read-state version that also
//! pushes `changed` (`acted`) to every tab of the user, on every node,
//! whose counts are then read again as after a mark.
//!
//! First act wins, on any node, under concurrency: two acts read the same
//! version; the store applies only the first commit (Redis: the version
//! check in the commit script; memory: under the store's lock), and the
//! other's retry reads the recorded action and answers `already_acted`.
//!
//! With webhooks configured, the act arms its `message.action` event
//! BEFORE the commit (a node dying in between loses nothing): the event's
//! id is one per (message, user, action) and its check, when due, sends
//! it only if the recorded action is its own (see `Webhooks`), so the
//! losers' events are dropped. An event left dropped by an earlier act
//! that failed is armed again, so a later act with the same action that
//! commits still raises its webhook.

use herald_protocol::{Changed, ChangedState, MarkState, Message, ReceiptState, Stream};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{count_delta, newly_read_private, Inbox, MARK_TRIES};
use crate::actions::find_action;
use crate::backend::WebhookEvent;
use crate::error::{CoreError, Result};
use crate::model::{validate_user_id, StreamKey};
use crate::read_state::ReadChange;
use crate::receipts::push_receipts;

/// What an act did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acted {
    /// The message acted on.
    pub message: Uuid,
    /// The action taken (its id).
    pub action: String,
    /// Whether this act made it read (false if it was read already).
    pub read_now: bool,
}

impl Inbox {
    /// Presses the button `action` of the message `id` for `user`: marks
    /// it read and records the action, once. Errors: `NotFound` (no such
    /// message for the user, or it expired or was deleted), `Invalid`
    /// (the message has no such action), `AlreadyActed` (an act on it
    /// came first, with this action or another).
    pub async fn act(&self, user: &str, id: Uuid, action: &str) -> Result<Acted> {
        validate_user_id(user)?;
        let message = self.find_own(user, id).await?;
        find_action(&message, action)?;
        let (stream, seq) = (message.stream, message.seq);
        if let Some(queue) = &self.action_hooks {
            let event = WebhookEvent::action(user, message.id, action, crate::unix_ms());
            crate::webhooks::arm_action(&**queue, event).await?;
        }
        for _ in 0..MARK_TRIES {
            let now = OffsetDateTime::now_utc();
            let (_, state) = self.store.user_counts(user, now).await?;
            if let Some(taken) = state.marks(stream).acted.get(&seq) {
                return Err(CoreError::AlreadyActed(format!(
                    "message: already acted on ({taken})"
                )));
            }
            let old = state.marks(stream).flags(seq);
            if old.public().is_none() || message.expired(now) {
                return Err(CoreError::NotFound(format!("message: {id} not found")));
            }
            let new = old.apply(MarkState::Read);
            let mut next = state.clone();
            next.marks_mut(stream).set(seq, new);
            next.marks_mut(stream).acted.insert(seq, action.to_owned());
            let mut change = ReadChange {
                expect_version: state.version,
                updates: state.diff(&next),
                ..ReadChange::default()
            };
            if stream == Stream::Inbox {
                change.deltas.extend(count_delta(&message, old, new));
            }
            change.changed = Some(Changed {
                ids: vec![id],
                state: ChangedState::Acted,
                by: None,
                action: Some(action.to_owned()),
            });
            if self.store.commit_read_state(user, &change).await? {
                if stream == Stream::Inbox {
                    if let Some(sender) = newly_read_private(&message, old, new) {
                        let senders = std::iter::once((sender.as_str(), id));
                        push_receipts(&*self.store, user, ReceiptState::Read, senders).await;
                    }
                }
                return Ok(Acted {
                    message: id,
                    action: action.to_owned(),
                    read_now: old.level != new.level,
                });
            }
        }
        Err(CoreError::Unavailable(
            "act: the read state kept changing; retry".into(),
        ))
    }

    /// The user's message `id`, from their inbox or the announcements.
    async fn find_own(&self, user: &str, id: Uuid) -> Result<Message> {
        for stream in Stream::ALL {
            let key = StreamKey::for_user(user, stream);
            if let Some(message) = self.store.find(&key, &[id]).await?.into_iter().next() {
                return Ok(message);
            }
        }
        Err(CoreError::NotFound(format!("message: {id} not found")))
    }
}
