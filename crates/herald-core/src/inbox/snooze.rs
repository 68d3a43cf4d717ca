//! Snooze: a `snoozed` mark takes messages out of the counts and the
//! default history until their `until`; then they come back unseen, and
//! every tab of the user is told (`changed`, state `unsnoozed`) in the same
//! atomic step as the counts change. The mark side is in `Inbox::mark`;
//! here, the wake-up (the check of `until` is `until.rs`).

use herald_protocol::{Changed, ChangedState, Stream};
use time::OffsetDateTime;
use uuid::Uuid;

use super::until::unix_ms;
use super::{count_delta, Inbox, MARK_TRIES};
use crate::error::{CoreError, Result};
use crate::model::{validate_user_id, StreamKey};
use crate::read_state::{Flags, ReadChange, ReadState};

/// What ending a user's due snoozes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Woken {
    /// The messages back in the counts (the `changed` frame's ids).
    pub ids: Vec<Uuid>,
    /// The user's next wake-up still to come, unix ms.
    pub next: Option<i64>,
}

/// Whether `state` holds a snooze due by `now`.
pub(super) fn wake_due(state: &ReadState, now: OffsetDateTime) -> bool {
    next_wake(state).is_some_and(|at| at <= unix_ms(now))
}

/// The soonest wake-up of any stream.
fn next_wake(state: &ReadState) -> Option<i64> {
    Stream::ALL
        .into_iter()
        .filter_map(|s| state.marks(s).next_wake())
        .min()
}

impl Inbox {
    /// Ends the user's snoozes due by now: each message comes back unseen
    /// (an expired one stays out), in one compare-and-set with its counts
    /// that also pushes `changed` (`unsnoozed`) to every tab of the user.
    /// Idempotent: a second call (another node's waker) finds nothing due.
    /// Always commits (a bare version bump when nothing was due), so that
    /// the `next` it returns is the state's as of a commit.
    pub async fn wake(&self, user: &str) -> Result<Woken> {
        validate_user_id(user)?;
        for _ in 0..MARK_TRIES {
            let now = OffsetDateTime::now_utc();
            let now_ms = unix_ms(now);
            let (_, state) = self.store.user_counts(user, now).await?;
            let mut next = state.clone();
            let mut change = ReadChange {
                expect_version: state.version,
                ..ReadChange::default()
            };
            let mut ids = Vec::new();
            for stream in Stream::ALL {
                let due: Vec<u64> = state
                    .marks(stream)
                    .snoozed
                    .iter()
                    .filter(|(_, until)| **until <= now_ms)
                    .map(|(seq, _)| *seq)
                    .collect();
                let key = StreamKey::for_user(user, stream);
                for seq in due {
                    let message = self
                        .store
                        .read_after(&key, seq - 1, 1)
                        .await?
                        .into_iter()
                        .find(|m| m.seq == seq);
                    let marks = next.marks_mut(stream);
                    let old = marks.flags(seq);
                    let Some(message) = message else {
                        // Dropped by retention: nothing comes back.
                        marks.snoozed.remove(&seq);
                        continue;
                    };
                    if message.expired(now) || !old.snoozed {
                        // Not counted while snoozed, never counted again.
                        let gone = Flags {
                            snoozed: false,
                            expired: old.expired || message.expired(now),
                            ..old
                        };
                        marks.set(seq, gone);
                        marks.snoozed.remove(&seq);
                        continue;
                    }
                    let new = old.woken();
                    if stream == Stream::Inbox {
                        change.deltas.extend(count_delta(&message, old, new));
                    }
                    marks.set(seq, new);
                    ids.push(message.id);
                }
            }
            change.updates = state.diff(&next);
            let woken = Woken {
                next: next_wake(&next),
                ids,
            };
            // Committed even when nothing is due (a bare version bump, no
            // push): `next` then holds for the version read, and a snooze
            // that read it too and commits after would be left out of
            // `next`: its compare-and-set fails instead, and its retry
            // records its wake-up again (see `Inbox::mark_until`).
            if !woken.ids.is_empty() {
                change.changed = Some(Changed {
                    ids: woken.ids.clone(),
                    state: ChangedState::Unsnoozed,
                    by: None,
                    action: None,
                });
            }
            if self.store.commit_read_state(user, &change).await? {
                return Ok(woken);
            }
        }
        Err(CoreError::Unavailable(
            "wake: the read state kept changing; retry".into(),
        ))
    }
}
