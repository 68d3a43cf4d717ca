//! `MemAvailable` while the walk runs: a task samples it every 200 ms, so a
//! step that eats the machine's memory is halted before the floor, not
//! after.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_harness::machine::meminfo;
use tokio::time::Instant;

/// MemAvailable, sampled every 200 ms by a task: the latest value and the
/// lowest since the last [`MemWatch::reset_min`].
pub struct MemWatch {
    latest: AtomicU64,
    min: AtomicU64,
}

impl MemWatch {
    /// Starts the sampling task; it ends at `until` (or when aborted).
    pub fn start(until: Instant) -> anyhow::Result<(Arc<Self>, tokio::task::JoinHandle<()>)> {
        let now = meminfo()?.mem_available_kib;
        let watch = Arc::new(MemWatch {
            latest: AtomicU64::new(now),
            min: AtomicU64::new(now),
        });
        let w = watch.clone();
        let task = tokio::spawn(async move {
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(m) = meminfo() {
                    w.latest.store(m.mem_available_kib, Ordering::Relaxed);
                    w.min.fetch_min(m.mem_available_kib, Ordering::Relaxed);
                }
            }
        });
        Ok((watch, task))
    }

    pub fn latest(&self) -> u64 {
        self.latest.load(Ordering::Relaxed)
    }

    /// The lowest since the last reset, and a new start from the latest.
    pub fn reset_min(&self) -> u64 {
        self.min.swap(self.latest(), Ordering::Relaxed)
    }

    pub fn min(&self) -> u64 {
        self.min.load(Ordering::Relaxed).min(self.latest())
    }
}
