//! One trial's books: every message accepted and received marked, the
//! latencies, the errors. What runs a trial is `trials.rs`: the sender
//! books into the trial, and the trials drive the sender.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use herald_harness::latency::LatencyHist;

const ACCEPTED: u8 = 1;
const RECEIVED: u8 = 2;

/// Everything receivers and senders record for the running trial.
#[derive(Default)]
pub struct Trial {
    /// This process's run nonce: only messages stamped with it count.
    pub run: u32,
    pub id: u32,
    /// Per message: ACCEPTED and/or RECEIVED bits.
    marks: Vec<AtomicU8>,
    pub(super) hist: Mutex<LatencyHist>,
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub duplicates: AtomicU64,
    pub(super) first_error: Mutex<Option<String>>,
}

impl Trial {
    pub fn new(run: u32, id: u32, total: u64) -> Self {
        Trial {
            run,
            id,
            marks: (0..total).map(|_| AtomicU8::new(0)).collect(),
            ..Trial::default()
        }
    }

    pub fn accept(&self, k: u64) {
        if let Some(m) = self.marks.get(k as usize) {
            m.fetch_or(ACCEPTED, Ordering::Relaxed);
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn reject(&self, err: String) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .expect("error lock")
            .get_or_insert(err);
    }

    pub fn receive(&self, k: u64, latency_us: u64) {
        let Some(m) = self.marks.get(k as usize) else {
            return;
        };
        if m.fetch_or(RECEIVED, Ordering::Relaxed) & RECEIVED != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        self.hist.lock().expect("hist lock").record(latency_us);
    }

    /// Accepted by the gateway but never received.
    pub fn lost(&self) -> u64 {
        (self.marks.iter())
            .filter(|m| m.load(Ordering::Relaxed) == ACCEPTED)
            .count() as u64
    }
}

/// The trial receivers currently record into (none between trials).
pub type Current = Arc<RwLock<Option<Arc<Trial>>>>;
