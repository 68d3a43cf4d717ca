//! When a failed webhook is tried again: exponential backoff with jitter,
//! the first retry within 10 s (`docs/webhooks.md`, *Retries*).

use std::time::Duration;

/// Delay before retry `n` (1 = the first retry after the first failed
/// try): half of `base · 2^(n-1)` (capped at `cap`) plus a random part of
/// up to the other half. With the defaults (5 s, 1 h): 2.5–5 s, 5–10 s,
/// 10–20 s, … then 30–60 min from the 11th on. `jitter` is a number in
/// `[0, 1)`.
pub fn retry_delay(n: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let doubled = base.saturating_mul(1u32 << n.saturating_sub(1).min(20));
    let full = doubled.min(cap);
    full / 2 + full.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(5);
    const CAP: Duration = Duration::from_secs(3600);

    #[test]
    fn the_first_retry_comes_within_ten_seconds() {
        assert_eq!(retry_delay(1, BASE, CAP, 0.0), Duration::from_millis(2500));
        assert!(retry_delay(1, BASE, CAP, 0.999) <= Duration::from_secs(5));
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        assert_eq!(retry_delay(2, BASE, CAP, 0.0), Duration::from_secs(5));
        assert_eq!(retry_delay(3, BASE, CAP, 0.0), Duration::from_secs(10));
        assert_eq!(retry_delay(11, BASE, CAP, 0.0), Duration::from_secs(1800));
        assert_eq!(retry_delay(400, BASE, CAP, 0.999).as_secs(), 3598);
    }
}
