//! Unread fallback webhooks: the durable index of events, one per
//! (message, receiver), shared by every node (the service is
//! [`Webhooks`](crate::Webhooks)).
//!
//! An event is *armed* when a message with a fallback is stored: due at
//! the time its receiver should have read it by. At that time a node's
//! claim takes it (a lease, as scheduled sends are claimed, see
//! [`Timers`](super::Timers)) and checks the message: read (or gone) →
//! *dropped*; still unread → *pending*, with the body it will carry on
//! every try. A pending event is claimed again at each try, then
//! *delivered*, or *dead* once its retries ran out. A node that dies
//! holding a claim leaves the event to the next claim after the lease.
//!
//! Every change of state is a compare-and-set on the state the caller
//! read ([`WebhookQueue::settle`]): of two nodes that both claimed an
//! armed event (the first one's lease ran out), one creates it.
//!
//! An announcement (stored once, in the `all` stream) has no receiver list:
//! it arms one event for [`EVERYONE`], which, when due, arms an event per
//! user of the queue's audience ([`WebhookQueue::remember`]: users who
//! connected while webhooks were on), a page per claim, its place kept in
//! the event's `cursor`. Each user's event is then checked as any other.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use herald_protocol::Stream;

use crate::error::Result;

/// The `user` of an announcement's event before it is armed per user:
/// not a valid user id, so no user's event can take its id.
pub const EVERYONE: &str = "*";

/// Where an event stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookState {
    /// Waiting for its due time; nothing decided yet.
    Armed,
    /// Created: to be POSTed (again) at `next_at`.
    Pending,
    Delivered,
    /// The message was read, deleted, archived or snoozed in time, or the
    /// receiver turned the fallback off: no webhook.
    Dropped,
    /// Every try failed for [`WebhookSettings::give_up_after`](crate::WebhookSettings).
    Dead,
}

impl WebhookState {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookState::Armed => "armed",
            WebhookState::Pending => "pending",
            WebhookState::Delivered => "delivered",
            WebhookState::Dropped => "dropped",
            WebhookState::Dead => "dead",
        }
    }

    /// Still to be worked on: in the index of due events.
    pub fn is_open(self) -> bool {
        matches!(self, WebhookState::Armed | WebhookState::Pending)
    }

    /// How long a backend keeps an event in this state: open ones until
    /// they end; ended ones long enough that a late append of the same
    /// message (a retried scheduled send) finds the event and arms none.
    pub fn kept(self) -> Option<Duration> {
        match self {
            WebhookState::Armed | WebhookState::Pending => None,
            WebhookState::Delivered | WebhookState::Dropped => Some(ENDED_KEPT),
            WebhookState::Dead => Some(DEAD_KEPT),
        }
    }
}

/// One event: a message of one receiver that may go unread.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// The `webhook-id` (see [`event_id`]): the same on every try.
    pub id: Uuid,
    pub state: WebhookState,
    /// The receiver, or [`EVERYONE`].
    pub user: String,
    /// The message's id in the user's inbox (or the `all` stream).
    pub message: Uuid,
    /// When the message was stored (unix ms).
    pub stored_at: i64,
    /// When the index takes it next (unix ms): its due time, a retry's, the
    /// end of its claim's lease; `None` once it ended.
    pub next_at: Option<i64>,
    /// The topic it was published to, whose `fallback` setting counts too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// When it was created (unix ms; its retries end a while after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// The JSON body every try POSTs, fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Tries made.
    #[serde(default)]
    pub attempts: u32,
    /// Tries not made because this node's circuit breaker was open: each
    /// moved the next try on its schedule, as a failed try would, with no
    /// request sent (see [`Webhooks`](crate::Webhooks)).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub postponed: u32,
    /// What the last failed try got (a status, a timeout, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it died (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_at: Option<i64>,
    /// A `message.action` event: the action the user took (absent: a
    /// `message.unread` event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Where the message is: the receiver's inbox, or `all` (an
    /// announcement).
    #[serde(default, skip_serializing_if = "is_inbox")]
    pub stream: Stream,
    /// An [`EVERYONE`] event's place in the audience: the users after it
    /// are still to be armed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_inbox(stream: &Stream) -> bool {
    *stream == Stream::Inbox
}

impl WebhookEvent {
    /// The armed event of `message` in `user`'s inbox, stored at
    /// `stored_at`, due `after` it.
    pub fn armed(user: &str, message: Uuid, stored_at: i64, after: Duration) -> Self {
        let after_ms = after.as_millis().min(i64::MAX as u128) as i64;
        WebhookEvent {
            id: event_id(message, user),
            state: WebhookState::Armed,
            user: user.to_owned(),
            message,
            stored_at,
            next_at: Some(stored_at.saturating_add(after_ms)),
            topic: None,
            created_at: None,
            body: None,
            attempts: 0,
            postponed: 0,
            last_error: None,
            dead_at: None,
            action: None,
            stream: Stream::Inbox,
            cursor: None,
        }
    }

    /// The event of announcement `message` (the `all` stream), stored at
    /// `stored_at`: at `after` it arms one event per user of the audience.
    pub fn for_everyone(message: Uuid, stored_at: i64, after: Duration) -> Self {
        WebhookEvent {
            stream: Stream::All,
            ..WebhookEvent::armed(EVERYONE, message, stored_at, after)
        }
    }

    /// The event of user `user` that an [`EVERYONE`] event arms, due `now`.
    pub fn for_one_of_everyone(&self, user: &str, now: i64) -> Self {
        WebhookEvent {
            id: event_id(self.message, user),
            user: user.to_owned(),
            next_at: Some(now),
            cursor: None,
            ..self.clone()
        }
    }

    /// The `message.action` event of `user` taking `action` on `message`
    /// at `at` (unix ms), due at once; armed before the act commits, it
    /// is created only if the act it stands for was the one recorded.
    pub fn action(user: &str, message: Uuid, action: &str, at: i64) -> Self {
        WebhookEvent {
            id: action_event_id(message, user, action),
            action: Some(action.to_owned()),
            ..WebhookEvent::armed(user, message, at, Duration::ZERO)
        }
    }
}

/// The id of the `message.action` event of `user` taking `action` on
/// `message`: one per (message, receiver, action), so concurrent acts
/// with different actions arm one event each (only the recorded one is
/// sent) and a retried act arms none twice.
pub fn action_event_id(message: Uuid, user: &str, action: &str) -> Uuid {
    Uuid::new_v5(&message, format!("action:{user}:{action}").as_bytes())
}

/// The id of the event of `message` for `user`: a name-based (v5) UUID in
/// the message id's namespace, the same on every node, so an event is
/// armed at most once per (message, receiver) whoever appends it.
pub fn event_id(message: Uuid, user: &str) -> Uuid {
    Uuid::new_v5(&message, format!("webhook:{user}").as_bytes())
}

/// Open events by state, on every node together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookBacklog {
    /// Waiting for their due time.
    pub armed: u64,
    /// Created and not delivered yet (retrying, or due for a first try).
    pub pending: u64,
    /// Dead and kept for the dead-letter list.
    pub dead: u64,
}

/// The durable index of webhook events, shared by every node.
#[async_trait]
pub trait WebhookQueue: Send + Sync + 'static {
    /// Keeps each armed event, indexed at its `next_at`; an id held already
    /// (in any state) is left as it is.
    async fn arm(&self, events: &[WebhookEvent]) -> Result<()>;

    /// Up to `limit` open events whose `next_at` is by `now` (unix ms),
    /// soonest first, each leased to the caller until `now + lease`: no
    /// other claim returns it until then; after, the next claim does.
    async fn claim(&self, now: i64, limit: usize, lease: Duration) -> Result<Vec<WebhookEvent>>;

    /// Replaces the event with `event` (its new state, `next_at`, …) if it
    /// is still in state `from`; false, having changed nothing, otherwise.
    /// An open state is indexed at `next_at`; a dead one is listed by
    /// [`WebhookQueue::dead`]; an ended one is kept for
    /// [`WebhookState::kept`].
    async fn settle(&self, from: WebhookState, event: &WebhookEvent) -> Result<bool>;

    /// The event, in whatever state; `None` if unknown (or no longer kept).
    async fn get(&self, id: Uuid) -> Result<Option<WebhookEvent>>;

    /// Creates an armed event: `event` (pending, with its body) replaces
    /// it if it is still armed and fewer than `max_pending` events are
    /// pending, all nodes together; if as many are pending already,
    /// `full` (the same event, dead) replaces it instead, listed with the
    /// dead (and bounded by [`WebhookQueue::trim_dead`]). Not armed any
    /// more (another claim created or dropped it): nothing changes. One
    /// atomic step: the count read and the event's change.
    async fn create(
        &self,
        event: &WebhookEvent,
        full: &WebhookEvent,
        max_pending: u64,
    ) -> Result<Created>;

    /// Forgets dead events: those dead since before `expired_before`
    /// (unix ms), then the oldest beyond the newest `keep`; at most
    /// `batch` of each per call. Returns how many it removed.
    async fn trim_dead(&self, expired_before: i64, keep: u64, batch: usize) -> Result<u64>;

    /// Up to `limit` dead events with ids after `after`, in id order.
    async fn dead(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<WebhookEvent>>;

    /// Open and dead events, on every node together.
    async fn backlog(&self) -> Result<WebhookBacklog>;

    /// Adds `user` to the audience of announcements' events (a user who
    /// connected); known already: nothing changes.
    async fn remember(&self, user: &str) -> Result<()>;

    /// Removes `user` from that audience (their data was erased).
    async fn forget(&self, user: &str) -> Result<()>;

    /// A page of about `limit` users of the audience from `cursor` (`None`:
    /// the start), and the cursor of the next page (`None`: that was the
    /// last). A user present all along is in some page, maybe in two (an
    /// event armed twice is armed once).
    async fn audience(&self, cursor: Option<&str>, limit: usize) -> Result<AudiencePage>;

    /// Every event of `user` still kept, in whatever state, by id: what an
    /// export lists.
    async fn events_of(&self, user: &str) -> Result<Vec<WebhookEvent>>;

    /// Removes these events of `user`, in whatever state (open ones leave
    /// the index and the backlog, dead ones the dead-letter list); returns
    /// how many it removed. A node whose claim holds one finds it gone at
    /// its next [`WebhookQueue::settle`] (false) and sends nothing more.
    async fn forget_events(&self, user: &str, ids: &[Uuid]) -> Result<u64>;
}

/// What [`WebhookQueue::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Created, pending: to be tried.
    Pending,
    /// Created dead: `max_pending` events were pending already.
    Full,
    /// Not armed any more: nothing changed.
    Lost,
}

/// A page of [`WebhookQueue::audience`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudiencePage {
    pub users: Vec<String>,
    pub next: Option<String>,
}

/// How long a delivered or dropped event is kept.
pub const ENDED_KEPT: Duration = Duration::from_secs(2 * 24 * 3600);

/// How long a dead event stays in the dead-letter list.
pub const DEAD_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_id_is_one_per_message_and_receiver() {
        let m = Uuid::now_v7();
        assert_eq!(event_id(m, "alice"), event_id(m, "alice"));
        assert_ne!(event_id(m, "alice"), event_id(m, "bob"));
        assert_ne!(event_id(m, "alice"), event_id(Uuid::now_v7(), "alice"));
    }

    #[test]
    fn states_serialize_lowercase() {
        let e = WebhookEvent::armed("a", Uuid::nil(), 1_000, Duration::from_secs(2));
        assert_eq!(e.next_at, Some(3_000));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["state"], "armed");
        let back: WebhookEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }
}
