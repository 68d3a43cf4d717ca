//! What the leased indexes share (scheduled sends, webhook events): a
//! sorted set of due items whose claim moves each item it takes to the end
//! of the claimer's lease, so that a node that dies holding items leaves
//! them to the next claim after the lease.

use std::time::Duration;

use fred::prelude::Value;
use herald_core::Result;

use crate::script::Script;
use crate::Shared;

/// A duration in ms, as Redis takes it.
pub(crate) fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Runs a claim `script` (KEYS: the index; ARGV: now ms, limit, lease end
/// ms, the items' hash key prefix) and returns the documents it claimed.
pub(crate) async fn claim(
    script: &Script,
    shared: &Shared,
    index: String,
    prefix: String,
    (now, limit, lease): (i64, usize, Duration),
) -> Result<Vec<String>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    script
        .run(
            shared.pool.next(),
            index,
            vec![
                now.into(),
                Value::from(limit.min(i64::MAX as usize) as i64),
                now.saturating_add(millis(lease)).into(),
                prefix.into(),
            ],
        )
        .await
}
