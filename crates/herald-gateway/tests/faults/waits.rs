//! Waiting for a condition, and saying how long things took.

use std::time::{Duration, Instant};

/// Polls `ok` every 20 ms until it holds; returns how long that took.
/// Panics after `within` (or 10,000 polls).
pub async fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    for _ in 0..10_000 {
        if ok() {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within 10,000 polls");
}

pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// A short summary of durations: min / median / max in ms.
pub fn spread(mut d: Vec<Duration>) -> String {
    if d.is_empty() {
        return "-".into();
    }
    d.sort();
    format!(
        "min {} / median {} / max {} ms",
        ms(d[0]),
        ms(d[d.len() / 2]),
        ms(d[d.len() - 1])
    )
}
