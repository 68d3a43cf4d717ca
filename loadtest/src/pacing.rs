//! Open-loop pacing: message `k` is due at `start + k / rate`, whatever
//! happened to message `k - 1`.
//!
//! Latency is measured from the *scheduled* time, not from when the sender
//! got around to it, so a stalled system cannot hide its stall by slowing the
//! load down (coordinated omission).

use std::time::Duration;

/// The send schedule of one trial.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Offered rate in messages per second.
    pub rate: f64,
    /// How many messages the trial sends in all.
    pub total: u64,
}

impl Schedule {
    pub fn new(rate: f64, duration: Duration) -> Self {
        assert!(rate > 0.0, "rate must be positive");
        Schedule {
            rate,
            total: (rate * duration.as_secs_f64()).round() as u64,
        }
    }

    /// When message `k` is due, as an offset from the trial's start.
    pub fn due(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// How many messages are due by `elapsed` (those with `due(k) <= elapsed`),
    /// capped at `total`. A sender that fell behind sends all of them at once.
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        // The epsilon absorbs float rounding so that `due_by(due(k)) > k`.
        let n = (elapsed.as_secs_f64() * self.rate + 1e-6).floor() as u64 + 1;
        n.min(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_is_rate_times_duration() {
        assert_eq!(Schedule::new(1000.0, Duration::from_secs(10)).total, 10_000);
        assert_eq!(Schedule::new(2.5, Duration::from_secs(4)).total, 10);
    }

    #[test]
    fn due_times_are_evenly_spaced() {
        let s = Schedule::new(1000.0, Duration::from_secs(1));
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), Duration::from_millis(1));
        assert_eq!(s.due(500), Duration::from_millis(500));
    }

    #[test]
    fn due_by_counts_messages_whose_time_has_come() {
        let s = Schedule::new(100.0, Duration::from_secs(1));
        assert_eq!(s.due_by(Duration::ZERO), 1); // message 0 is due at once
        assert_eq!(s.due_by(Duration::from_millis(9)), 1);
        assert_eq!(s.due_by(Duration::from_millis(10)), 2);
        assert_eq!(s.due_by(Duration::from_millis(995)), 100);
        assert_eq!(s.due_by(Duration::from_secs(60)), 100); // capped at total
        for k in 0..s.total {
            assert!(s.due_by(s.due(k)) > k, "message {k} is due at its own time");
        }
    }
}
