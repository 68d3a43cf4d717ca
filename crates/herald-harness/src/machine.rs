//! Facts about the whole machine, from the kernel: how busy its cores were
//! (other jobs share them, so a benchmark says what was left for it) and
//! how much memory is left (`MemAvailable` bounds a walk toward many
//! connections).

use anyhow::Context;
use serde::Serialize;

/// The whole machine's CPU time so far, as (busy, total) clock ticks over
/// every core, from the first line of `/proc/stat`.
pub fn machine_ticks() -> Option<(u64, u64)> {
    parse_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Busy cores on average between two [`machine_ticks`] readings.
pub fn busy_cores(before: (u64, u64), after: (u64, u64), cores: usize) -> f64 {
    let total = after.1.saturating_sub(before.1).max(1) as f64;
    after.0.saturating_sub(before.0) as f64 / total * cores as f64
}

fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    let total: u64 = ticks.iter().take(8).sum();
    Some((total - idle, total))
}

/// The lines of /proc/meminfo a walk reads, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemInfo {
    pub mem_available_kib: u64,
    pub slab_kib: u64,
    pub sunreclaim_kib: u64,
}

fn parse_meminfo(text: &str) -> Option<MemInfo> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ticks_count_everything_but_idle() {
        let stat = "cpu  100 5 50 800 45 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_stat(stat), Some((155, 1000)));
        assert!(machine_ticks().is_some());
        assert!((busy_cores((0, 0), (155, 1000), 2) - 0.31).abs() < 1e-9);
    }

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
}
