//! One trial of marks: the counters and histograms it keeps. The open loop
//! that runs it is `drive.rs`: a user's pending mark points at its trial,
//! and the loop hands marks to users.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use herald_harness::latency::LatencyHist;

/// Counters and histograms of one trial.
#[derive(Default)]
pub struct Trial {
    pub id: u32,
    pub reply: Mutex<LatencyHist>,
    pub counts: Mutex<LatencyHist>,
    pub lag: Mutex<LatencyHist>,
    pub sent: AtomicU64,
    pub skipped_busy: AtomicU64,
    pub send_errors: AtomicU64,
    pub replies_ok: AtomicU64,
    pub reply_errors: AtomicU64,
    pub reply_timeouts: AtomicU64,
    pub unchanged: AtomicU64,
    pub counts_received: AtomicU64,
    pub counts_timeouts: AtomicU64,
    pub completed: AtomicU64,
    /// Marks sent and not yet finished (answered and pushed, failed, or
    /// timed out).
    pub in_flight: AtomicU64,
    pub first_error: Mutex<Option<String>>,
}

impl Trial {
    pub fn new(id: u32) -> Self {
        Trial {
            id,
            ..Trial::default()
        }
    }

    pub fn error(&self, e: String) {
        self.first_error
            .lock()
            .expect("error lock")
            .get_or_insert(e);
    }

    pub fn load(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
