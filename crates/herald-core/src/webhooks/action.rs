//! `message.action` events: a user pressed an action button
//! (`Inbox::act`). The act arms the event before it commits, so when the
//! event comes due the read state says whether that act is the one that
//! counted: the recorded action is the event's → created and sent like
//! any event (same signing, same retries); another action → dropped (a
//! concurrent act came first); none yet → checked again shortly, and
//! dropped once [`ACT_WAIT`] passed (the act never committed).
//!
//! The event's id is one per (message, user, action), so an act that
//! failed leaves its event held, dropped, for [`ENDED_KEPT`]: a later act
//! with the same action arms it again ([`arm`]), or that act, once
//! recorded, would raise no webhook.
//!
//! [`ENDED_KEPT`]: crate::backend::ENDED_KEPT

use std::time::Duration;

use herald_protocol::Message;
use time::OffsetDateTime;

use crate::backend::{Store, WebhookEvent, WebhookQueue, WebhookState};
use crate::error::{CoreError, Result};
use crate::model::StreamKey;

/// The event type of an action taken.
pub const MESSAGE_ACTION: &str = "message.action";

/// How long an action event waits for its act's commit before it is
/// dropped (the act failed, or its node died before committing).
pub const ACT_WAIT: Duration = Duration::from_secs(60);

/// How soon an action event whose act has not committed yet is checked
/// again.
const RECHECK: Duration = Duration::from_secs(1);

/// Arms the `message.action` event of an act before it commits. An event
/// of the same (message, user, action) held `dropped` (an earlier act
/// that never committed) is armed again in its place, a compare-and-set
/// from `dropped`, so the act that commits now gets its one event; one
/// held in any other state (armed, pending, delivered, dead) is left as
/// it is (`WebhookQueue::arm`). Of two acts re-arming at once, one
/// settles; the other's finds it armed and is done.
pub(crate) async fn arm(queue: &dyn WebhookQueue, event: WebhookEvent) -> Result<()> {
    queue.arm(std::slice::from_ref(&event)).await?;
    let held = queue.get(event.id).await?;
    if held.is_some_and(|h| h.state == WebhookState::Dropped) {
        queue.settle(WebhookState::Dropped, &event).await?;
    }
    Ok(())
}

/// What the check of a due action event found.
pub(super) enum ActionCheck {
    /// Another action was recorded, the message is gone, or the act never
    /// committed: no webhook.
    Drop,
    /// Not committed yet: check again then (unix ms).
    Recheck(i64),
    /// This act counted: send it with this message.
    Create(Box<Message>),
}

/// Whether the act behind `event` (taking `action`) is the one recorded.
pub(super) async fn check(
    store: &dyn Store,
    event: &WebhookEvent,
    action: &str,
    now: i64,
) -> Result<ActionCheck> {
    let mut found = None;
    for key in [StreamKey::inbox(&event.user), StreamKey::All] {
        found = store.find(&key, &[event.message]).await?.into_iter().next();
        if found.is_some() {
            break;
        }
    }
    let Some(mut message) = found else {
        return Ok(ActionCheck::Drop);
    };
    let state = store.read_state(&event.user).await?;
    match state.marks(message.stream).acted.get(&message.seq) {
        Some(taken) if taken == action => {
            message.acted = Some(taken.clone());
            Ok(ActionCheck::Create(Box::new(message)))
        }
        Some(_) => Ok(ActionCheck::Drop),
        None if now.saturating_sub(event.stored_at) > ACT_WAIT.as_millis() as i64 => {
            Ok(ActionCheck::Drop)
        }
        None => Ok(ActionCheck::Recheck(
            now.saturating_add(RECHECK.as_millis() as i64),
        )),
    }
}

/// The body of a `message.action` event created at `now`: the user, the
/// message (with `acted`) and the action, with its label and url.
pub(super) fn body(
    event: &WebhookEvent,
    message: &Message,
    action: &str,
    now: i64,
) -> Result<String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(now as i128 * 1_000_000)
        .map_err(|e| CoreError::Invalid(format!("now: {e}")))?;
    let timestamp = at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| CoreError::Invalid(format!("timestamp: {e}")))?;
    let button = message.actions.iter().find(|a| a.id == action);
    let body = serde_json::json!({
        "type": MESSAGE_ACTION,
        "timestamp": timestamp,
        "data": {
            "user": event.user,
            "message": message,
            "action": button,
            "acted_at": event.stored_at,
        },
    });
    Ok(body.to_string())
}
