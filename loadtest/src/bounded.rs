//! The overall time limit of a run (`--timeout`), and the bounded waits
//! inside one.
//!
//! Every scenario must end on its own even when a gateway hangs or a
//! worker never answers, so a benchmark script (and the machine it shares)
//! is never left waiting: the whole run is one future under one limit.

use std::future::Future;
use std::time::Duration;

/// Runs `run` for at most `limit`; past it the run is dropped (its tasks
/// and sockets with it) and an error names the `--timeout`.
pub async fn within<T>(
    limit: Duration,
    run: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| anyhow::anyhow!("the run took longer than --timeout {limit:?}"))?
}

/// Checks `done` every `every` until it holds (true) or `limit` has
/// passed (false).
pub async fn wait_until(limit: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + limit;
    while !done() {
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(every).await;
    }
    true
}
