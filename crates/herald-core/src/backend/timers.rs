//! Scheduled sends: a message accepted now (`deliver_at` on a send) and
//! appended at its due time by whichever node's scheduler claims it first
//! (the service is [`Scheduler`](crate::Scheduler)). And snooze wake-ups:
//! which users have a snoozed message to bring back when (the snooze
//! itself, `until` and all, is the user's read state in the store; this is
//! only the index a node's scheduler walks).
//!
//! A claim is a lease, not a removal: a node that claims due sends and dies
//! before recording them delivered leaves them due again once the lease
//! ends, and another node's claim takes them. Their appends cannot double:
//! a scheduled message keeps the id it was given at schedule time, and the
//! store's append refuses an id the stream holds (see
//! [`Store::append`](super::Store::append)).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::JobMessage;
use crate::error::Result;
use crate::model::Draft;

/// One scheduled send: the message (id and all) and its receivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledSend {
    /// The message's id, which is also the schedule's.
    pub id: Uuid,
    /// When it is due, unix milliseconds.
    pub deliver_at: i64,
    /// Its receivers; `None`: everyone (the `all` stream).
    pub users: Option<Vec<String>>,
    pub message: JobMessage,
}

impl ScheduledSend {
    /// The draft every receiver's append takes (one id for all of them,
    /// on every try).
    pub fn draft(&self) -> Draft {
        let m = &self.message;
        Draft {
            id: self.id,
            category: m.category.clone(),
            severity: m.severity,
            tags: m.tags.clone(),
            from: m.from.clone(),
            title: m.title.clone(),
            body: m.body.clone(),
            data: m.data.clone(),
            ts: m.ts,
            expires_at: m.expires_at,
            group_key: m.group_key.clone(),
            critical: m.critical,
            in_app_default: m.in_app_default,
            topic: None,
            fallback_after: m.fallback_after_secs.map(std::time::Duration::from_secs),
            actions: m.actions.clone(),
        }
    }
}

/// Where a scheduled send stands (`GET /v1/scheduled/{id}`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleState {
    /// Not delivered yet (possibly claimed by a node that is delivering it).
    Pending,
    Delivered,
    Cancelled,
}

impl ScheduleState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Pending => "pending",
            ScheduleState::Delivered => "delivered",
            ScheduleState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ScheduleState::Pending,
            "delivered" => ScheduleState::Delivered,
            "cancelled" => ScheduleState::Cancelled,
            _ => return None,
        })
    }
}

/// What `GET /v1/scheduled/{id}` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledStatus {
    pub id: Uuid,
    pub state: ScheduleState,
    pub deliver_at: i64,
}

/// What a cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// Cancelled now, or before: nothing will be delivered.
    Cancelled,
    /// Too late: delivered, or claimed by a node delivering it (its
    /// appends may have run already).
    Delivered,
    /// No such schedule (or its status outlived [`SCHEDULE_KEPT`]).
    Unknown,
}

/// Scheduled sends, shared by every node of a backend.
#[async_trait]
pub trait Timers: Send + Sync + 'static {
    /// Keeps `send` until it is due. Scheduling an id held already changes
    /// nothing (a retried request).
    async fn schedule(&self, send: &ScheduledSend) -> Result<()>;

    /// Up to `limit` pending sends due by `now` (unix ms), soonest first,
    /// each leased to the caller until `now + lease`: until then no other
    /// claim returns it; after, if it was not recorded delivered, the next
    /// claim does (its claimer died).
    async fn claim_due(
        &self,
        now: i64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ScheduledSend>>;

    /// Records these sends delivered: they leave the schedule and their
    /// status reads `delivered` for [`SCHEDULE_KEPT`].
    async fn delivered(&self, ids: &[Uuid]) -> Result<()>;

    /// Cancels a send not claimed yet.
    async fn cancel(&self, id: Uuid) -> Result<Cancelled>;

    /// The send's status; `None` if unknown.
    async fn status(&self, id: Uuid) -> Result<Option<ScheduledStatus>>;

    /// Sends not delivered yet, on every node together.
    async fn pending(&self) -> Result<u64>;

    /// Records that `user` has a snoozed message waking at `at` (unix ms),
    /// keeping the soonest. Called BEFORE the snooze is committed, on each
    /// try of its compare-and-set (a node that dies in between leaves a
    /// wake-up that finds nothing due, never a snooze without one; see
    /// [`Inbox::mark_until`](crate::Inbox::mark_until)): if a claim holds
    /// the user meanwhile, the wake-up is kept for that claim's
    /// [`Timers::woken`], so a waker that read the state before the
    /// snooze does not lose it.
    async fn wake_at(&self, user: &str, at: i64) -> Result<()>;

    /// Up to `limit` users with a wake-up due by `now`, each leased to the
    /// caller until `now + lease` (as [`Timers::claim_due`]).
    async fn claim_wakes(&self, now: i64, limit: usize, lease: Duration) -> Result<Vec<String>>;

    /// Ends a claim of `user`: their next wake-up is `next` (none: they
    /// have no snooze left), or a sooner one a [`Timers::wake_at`] asked
    /// for since the claim.
    async fn woken(&self, user: &str, next: Option<i64>) -> Result<()>;

    /// Users with a wake-up to come, on every node together.
    async fn snoozing(&self) -> Result<u64>;

    /// The pending sends addressed to `user` by name (not those to
    /// everyone), soonest first: what an export lists.
    async fn scheduled_for(&self, user: &str) -> Result<Vec<ScheduledSend>>;

    /// Takes `user` off the receivers of every pending send addressed to
    /// them that no node claimed yet; a send left with no receiver is
    /// cancelled. Returns how many sends it changed. A send claimed
    /// meanwhile is being delivered: it is left as it is (its message is
    /// stored after the erasure and a later export lists it).
    async fn forget_receiver(&self, user: &str) -> Result<u64>;
}

/// How long a delivered or cancelled send's status stays readable.
pub const SCHEDULE_KEPT: Duration = Duration::from_secs(24 * 3600);

/// How far ahead a send may be scheduled (a year, leap years included).
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(366 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for s in [
            ScheduleState::Pending,
            ScheduleState::Delivered,
            ScheduleState::Cancelled,
        ] {
            assert_eq!(ScheduleState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
    }
}
