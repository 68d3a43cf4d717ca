//! When a client whose connection ended tries again: exponential backoff
//! with full jitter, as the browser SDK does.
//!
//! Attempt `n` (1 after a close, then one more per failed attempt in a row)
//! waits a random time in `[0, min(cap, base · 2^(n-1))]`. The jitter is the
//! point of a storm: without it every client of a dead node retries at the
//! same instants and the survivors (and Redis) take the whole herd at once
//! (docs/faults.md, "Reconnect storm after a node loss"). A backoff
//! [`without_jitter`](Backoff::without_jitter) waits the whole ceiling: the
//! herd, for comparison.

use std::time::Duration;

use rand::{Rng, RngExt};

/// The backoff policy of every client of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub jitter: bool,
}

impl Backoff {
    /// Full jitter from `base_ms`, doubling up to `cap_ms` (a cap below the
    /// base is the base).
    pub fn new(base_ms: u64, cap_ms: u64) -> Self {
        Backoff {
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(cap_ms.max(base_ms)),
            jitter: true,
        }
    }

    /// The same ceilings, each waited in full.
    pub fn without_jitter(self) -> Self {
        Backoff {
            jitter: false,
            ..self
        }
    }

    /// The longest wait before attempt `n`: `min(cap, base · 2^(n-1))`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(20);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }

    /// The wait before attempt `n`: uniform in `[0, ceiling(n)]`, or the
    /// ceiling without jitter.
    pub fn delay<R: Rng + ?Sized>(&self, n: u32, rng: &mut R) -> Duration {
        let ceiling = self.ceiling(n);
        if !self.jitter {
            return ceiling;
        }
        Duration::from_micros(rng.random_range(0..=ceiling.as_micros() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff::new(100, 1_000);
        let ms = |n| b.ceiling(n).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(4), ms(5)],
            [100, 100, 200, 400, 800, 1000]
        );
        assert_eq!(ms(u32::MAX), 1000, "no overflow however many failures");
    }

    #[test]
    fn a_cap_below_the_base_is_the_base() {
        assert_eq!(
            Backoff::new(500, 100).ceiling(9),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn delays_are_spread_over_the_whole_window() {
        let b = Backoff::new(1_000, 16_000);
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..10_000).map(|_| b.delay(1, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        // Full jitter: each tenth of the window gets about a tenth.
        let mut tenths = [0u32; 10];
        for d in &delays {
            tenths[((d.as_micros() * 10 / 1_000_001) as usize).min(9)] += 1;
        }
        assert!(
            tenths.iter().all(|&c| (850..1150).contains(&c)),
            "{tenths:?}"
        );
        assert!((0..100).any(|_| b.delay(5, &mut rng) > Duration::from_secs(8)));
    }

    #[test]
    fn without_jitter_every_client_waits_the_ceiling() {
        let b = Backoff::new(1_000, 8_000).without_jitter();
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..100).all(|_| b.delay(1, &mut rng) == Duration::from_secs(1)));
        assert_eq!(b.delay(9, &mut rng), Duration::from_secs(8));
    }
}
