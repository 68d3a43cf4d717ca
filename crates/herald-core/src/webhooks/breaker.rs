//! The circuit breaker of a node's webhook tries (`docs/webhooks.md`,
//! *A dead receiver*). One per node, for the one `webhooks.url`: after
//! `failures` failed tries in a row it opens; while open, a due event is
//! tried only as the probe (one per `probe`), the others are postponed;
//! any 2xx closes it. Per node, not shared: each node learns of the
//! receiver from its own tries, at no Redis cost per try, and a dead
//! receiver then gets one probe per interval per node.

use std::sync::Mutex;
use std::time::Duration;

/// What a due event's try may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Closed: try it.
    Try,
    /// Open, and this try is the probe.
    Probe,
    /// Open: not tried; the next probe may go at this time (unix ms).
    Postpone(i64),
}

#[derive(Debug, Default)]
struct State {
    /// Failed tries in a row.
    failures: u32,
    open: bool,
    /// Open: when the next probe may go (unix ms).
    probe_at: i64,
    /// Open: a probe is in flight.
    probing: bool,
}

pub(crate) struct Breaker {
    failures: u32,
    probe: i64,
    state: Mutex<State>,
}

impl Breaker {
    /// Opens after `failures` failed tries in a row (0: never); one probe
    /// per `probe` while open.
    pub(crate) fn new(failures: u32, probe: Duration) -> Self {
        Breaker {
            failures,
            probe: probe.as_millis().min(i64::MAX as u128) as i64,
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.state.lock().unwrap().open
    }

    /// Whether a due event may be tried at `now` (unix ms).
    pub(crate) fn gate(&self, now: i64) -> Gate {
        let mut state = self.state.lock().unwrap();
        if !state.open {
            return Gate::Try;
        }
        if !state.probing && now >= state.probe_at {
            state.probing = true;
            state.probe_at = now.saturating_add(self.probe);
            return Gate::Probe;
        }
        Gate::Postpone(state.probe_at)
    }

    /// A try (the probe, or not) ended at `now`, delivered or not. Returns
    /// the breaker's new position when it changed (true: opened).
    pub(crate) fn record(&self, probe: bool, delivered: bool, now: i64) -> Option<bool> {
        let mut state = self.state.lock().unwrap();
        if probe {
            state.probing = false;
        }
        if delivered {
            state.failures = 0;
            let was_open = std::mem::take(&mut state.open);
            return was_open.then_some(false);
        }
        state.failures = state.failures.saturating_add(1);
        if probe {
            // Failed: the next probe one interval after this one ended.
            state.probe_at = now.saturating_add(self.probe);
        }
        if state.open || self.failures == 0 || state.failures < self.failures {
            return None;
        }
        state.open = true;
        state.probing = false;
        state.probe_at = now.saturating_add(self.probe);
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_a_row_probes_then_closes() {
        let b = Breaker::new(3, Duration::from_secs(30));
        assert_eq!(b.record(false, false, 0), None);
        assert_eq!(b.record(false, true, 0), None, "a success resets the run");
        for _ in 0..2 {
            assert_eq!(b.record(false, false, 0), None);
        }
        assert_eq!(b.gate(0), Gate::Try);
        assert_eq!(b.record(false, false, 1_000), Some(true));
        assert!(b.is_open());
        assert_eq!(b.gate(2_000), Gate::Postpone(31_000));
        assert_eq!(b.gate(31_000), Gate::Probe);
        assert_eq!(
            b.gate(31_001),
            Gate::Postpone(61_000),
            "one probe at a time"
        );
        assert_eq!(b.record(true, false, 32_000), None);
        assert_eq!(b.gate(40_000), Gate::Postpone(62_000));
        assert_eq!(b.gate(62_000), Gate::Probe);
        assert_eq!(b.record(true, true, 62_100), Some(false));
        assert_eq!(b.gate(62_200), Gate::Try);
    }

    #[test]
    fn zero_failures_is_no_breaker() {
        let b = Breaker::new(0, Duration::from_secs(30));
        for _ in 0..100 {
            assert_eq!(b.record(false, false, 0), None);
        }
        assert_eq!(b.gate(0), Gate::Try);
    }
}
