//! The expiry index's scores: how a message's `expires_at` is written
//! there, the clock it is compared with, and a score read back. Apart from
//! the store because the append batches (`batch/op.rs`) write the score
//! too, and the store imports the batches.

use fred::prelude::Value;
use herald_core::Result;
use time::OffsetDateTime;

use super::corrupt::corrupt;

/// An expiry index score (unix ms, as text; empty: none) as a time.
pub(super) fn parse_expiry_score(score: Value) -> Result<Option<OffsetDateTime>> {
    let text = score
        .convert::<String>()
        .map_err(|_| corrupt("expiry score"))?;
    if text.is_empty() {
        return Ok(None);
    }
    let ms: f64 = text.parse().map_err(|_| corrupt("expiry score"))?;
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .map(Some)
        .map_err(|_| corrupt("expiry score"))
}

/// `expires_at` as the expiry index's score: unix ms rounded up, at least
/// 1 (0 means "none" to the append script). With `now` rounded down (see
/// [`now_ms`]) a message is never taken as expired before its
/// `expires_at`; at most it is taken within the millisecond after.
pub(crate) fn expiry_ms(expires_at: Option<OffsetDateTime>) -> i64 {
    let Some(t) = expires_at else {
        return 0;
    };
    let ns = t.unix_timestamp_nanos();
    let ms = ns.div_euclid(1_000_000) + i128::from(ns.rem_euclid(1_000_000) != 0);
    i64::try_from(ms).unwrap_or(i64::MAX).max(1)
}

/// `now` in unix ms rounded down, for comparing with [`expiry_ms`].
pub(super) fn now_ms(now: OffsetDateTime) -> String {
    now.unix_timestamp_nanos().div_euclid(1_000_000).to_string()
}
