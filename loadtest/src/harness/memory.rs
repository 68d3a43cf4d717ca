//! The memory a benchmark watches: its processes' resident sets and the
//! machine's `/proc/meminfo`, whose `MemAvailable` bounds a walk toward
//! many connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::time::Instant;

use herald_harness::process::rss_kib;

/// The RSS of the processes summed, in KiB; fails for one that is gone
/// (before a run: a wrong PID).
pub fn rss_total(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&p| rss_kib(p)).sum()
}

/// Each process's RSS in KiB, 0 for one that is gone.
pub fn rss_each(pids: &[u32]) -> Vec<u64> {
    pids.iter().map(|&p| rss_kib(p).unwrap_or(0)).collect()
}

/// The lines of /proc/meminfo a walk reads, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemInfo {
    pub mem_available_kib: u64,
    pub slab_kib: u64,
    pub sunreclaim_kib: u64,
}

pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(MemInfo {
        mem_available_kib: field("MemAvailable")?,
        slab_kib: field("Slab")?,
        sunreclaim_kib: field("SUnreclaim")?,
    })
}

pub fn meminfo() -> anyhow::Result<MemInfo> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    parse_meminfo(&text).context("/proc/meminfo lacks MemAvailable, Slab or SUnreclaim")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo() {
        let text = "MemTotal:       24684544 kB\nMemAvailable:   23491232 kB\nSlab:             512000 kB\nSReclaimable:     300000 kB\nSUnreclaim:       212000 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Some(MemInfo {
                mem_available_kib: 23_491_232,
                slab_kib: 512_000,
                sunreclaim_kib: 212_000,
            })
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert!(meminfo().unwrap().mem_available_kib > 0);
    }

    #[test]
    fn rss_of_a_gone_process() {
        let own = std::process::id();
        assert!(rss_total(&[own]).unwrap() > 0);
        assert!(rss_total(&[own, u32::MAX - 1]).is_err());
        assert_eq!(rss_each(&[u32::MAX - 1]), [0]);
    }
}
