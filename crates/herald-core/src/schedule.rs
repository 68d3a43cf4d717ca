//! Scheduled sends and snooze wake-ups, the node side: the status and
//! cancel of one send, and the rounds of a node's scheduler, which claims
//! what came due (a lease, see [`Timers`]) and appends it through the
//! [`Sender`] as a send without a key would be, or ends the snoozes of the
//! users whose wake-up came ([`Inbox::wake`]). The send itself is scheduled
//! by [`Sender::send`], from a message prepared with a `deliver_at`
//! ([`Sender::prepare_at`]); a snooze by [`Inbox::mark_until`].

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::backend::{Cancelled, ScheduledStatus, Timers};
use crate::error::{CoreError, Result};
use crate::inbox::Inbox;
use crate::sender::Sender;

/// How a node's scheduler works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleSettings {
    /// How often it looks for due sends (it also goes on at once while a
    /// round claims a full batch).
    pub poll: Duration,
    /// Most sends one round claims.
    pub batch: usize,
    /// How long a claim holds sends back from other nodes: a node that dies
    /// holding them delays them by at most this.
    pub lease: Duration,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            poll: Duration::from_millis(250),
            batch: 1_000,
            lease: Duration::from_secs(10),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// Sends claimed.
    pub claimed: usize,
    /// Sends appended (or found appended by an earlier claimer).
    pub delivered: usize,
    /// Sends the store refused for good (a block, say): recorded
    /// delivered, nothing stored.
    pub refused: usize,
    /// Sends left to the next claim after their lease (the store was
    /// unavailable).
    pub retried: usize,
    /// How late each delivered send was, in ms after its due time.
    pub lateness_ms: Vec<u64>,
}

/// What one round of snooze wake-ups did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WakeRound {
    /// Users claimed.
    pub users: usize,
    /// Messages back in the counts.
    pub woken: usize,
    /// Users left to the next claim after their lease (the store was
    /// unavailable).
    pub retried: usize,
}

/// Scheduled sends: status, cancel, and the scheduler's rounds.
pub struct Scheduler {
    timers: Arc<dyn Timers>,
    settings: ScheduleSettings,
}

impl Scheduler {
    pub fn new(timers: Arc<dyn Timers>, settings: ScheduleSettings) -> Self {
        Scheduler { timers, settings }
    }

    pub fn settings(&self) -> &ScheduleSettings {
        &self.settings
    }

    /// `GET /v1/scheduled/{id}`.
    pub async fn status(&self, id: Uuid) -> Result<Option<ScheduledStatus>> {
        self.timers.status(id).await
    }

    /// `DELETE /v1/scheduled/{id}`: [`Cancelled::Delivered`] once a node
    /// claimed it.
    pub async fn cancel(&self, id: Uuid) -> Result<Cancelled> {
        self.timers.cancel(id).await
    }

    /// Sends not delivered yet, on every node.
    pub async fn pending(&self) -> Result<u64> {
        self.timers.pending().await
    }

    /// Users with a snooze to wake, on every node.
    pub async fn snoozing(&self) -> Result<u64> {
        self.timers.snoozing().await
    }

    /// One round of wake-ups: claims up to a batch of users whose wake-up
    /// is due by `now` (unix ms) and ends their due snoozes, each user's in
    /// one commit with its counts; records each one's next wake-up.
    pub async fn run_wakes(&self, inbox: &Inbox, now: i64) -> Result<WakeRound> {
        use futures_util::StreamExt;

        let users = self
            .timers
            .claim_wakes(now, self.settings.batch, self.settings.lease)
            .await?;
        let mut round = WakeRound {
            users: users.len(),
            ..WakeRound::default()
        };
        // A few users at a time: each wake is a few store calls.
        let mut wakes = futures_util::stream::iter(users)
            .map(|user| async move {
                let woken = inbox.wake(&user).await;
                let recorded = match &woken {
                    Ok(w) => self.timers.woken(&user, w.next).await,
                    Err(_) => Ok(()),
                };
                (user, woken, recorded)
            })
            .buffer_unordered(64);
        while let Some((user, woken, recorded)) = wakes.next().await {
            match (woken, recorded) {
                (Ok(w), Ok(())) => round.woken += w.ids.len(),
                (Ok(w), Err(e)) => {
                    round.woken += w.ids.len();
                    tracing::warn!(user, %e, "next wake-up not recorded; checked again after the lease");
                }
                (Err(e), _) => {
                    tracing::warn!(user, %e, "snooze not ended; retried after the lease");
                    round.retried += 1;
                }
            }
        }
        Ok(round)
    }

    /// One round: claims up to a batch of sends due by `now` (unix ms),
    /// appends them, records the appended and the refused delivered.
    pub async fn run_due(&self, sender: &Sender, now: i64) -> Result<Round> {
        let due = self
            .timers
            .claim_due(now, self.settings.batch, self.settings.lease)
            .await?;
        let mut round = Round {
            claimed: due.len(),
            ..Round::default()
        };
        if due.is_empty() {
            return Ok(round);
        }
        let outcomes = sender.deliver_due(&due).await;
        let finished_at = unix_ms();
        let mut done = Vec::with_capacity(due.len());
        for (send, outcome) in due.iter().zip(outcomes) {
            match outcome {
                Ok(_) => {
                    round.delivered += 1;
                    round
                        .lateness_ms
                        .push(finished_at.saturating_sub(send.deliver_at).max(0) as u64);
                    done.push(send.id);
                }
                Err(CoreError::Unavailable(e)) => {
                    tracing::warn!(id = %send.id, %e, "scheduled send not delivered; retried after its lease");
                    round.retried += 1;
                }
                Err(e) => {
                    tracing::warn!(id = %send.id, %e, "scheduled send refused at delivery");
                    round.refused += 1;
                    done.push(send.id);
                }
            }
        }
        self.timers.delivered(&done).await?;
        Ok(round)
    }
}

/// Now, in unix milliseconds.
pub fn unix_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
