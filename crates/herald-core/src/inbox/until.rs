//! The `until` of a mark: only a `snoozed` mark takes one, within a year.
//! Its own file, below both `inbox.rs` (which checks a mark) and
//! `snooze.rs` (which wakes what is due), so neither imports the other.

use herald_protocol::MarkState;
use time::OffsetDateTime;

use crate::backend::MAX_SCHEDULE_AHEAD;
use crate::error::{CoreError, Result};

pub(super) fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A `snoozed` mark needs an `until` ahead of now by at most a year; no
/// other mark takes one.
pub(super) fn check_until(mark: MarkState, until: Option<i64>) -> Result<Option<i64>> {
    match (mark, until) {
        (MarkState::Snoozed, None) => Err(CoreError::Invalid(
            "until: a snoozed mark needs until (unix ms)".into(),
        )),
        (MarkState::Snoozed, Some(until)) => {
            let now = unix_ms(OffsetDateTime::now_utc());
            if until <= now {
                return Err(CoreError::Invalid("until: is not in the future".into()));
            }
            if until - now > MAX_SCHEDULE_AHEAD.as_millis() as i64 {
                return Err(CoreError::Invalid(format!(
                    "until: more than {} days ahead",
                    MAX_SCHEDULE_AHEAD.as_secs() / 86_400
                )));
            }
            Ok(Some(until))
        }
        (_, Some(_)) => Err(CoreError::Invalid(
            "until: only a snoozed mark takes until".into(),
        )),
        (_, None) => Ok(None),
    }
}
