//! The CPU time of the processes a benchmark charges its work to (the
//! gateways, Redis, the load generator itself), read from `/proc` before
//! and after the measured part: a latency figure means little on two
//! shared cores without knowing who burnt them.

use anyhow::Context;
use herald_harness::process::cpu_split_micros;

/// A `--cpu-pid` argument: `LABEL=PID` or `PID` (labelled `pid PID`).
pub fn parse_cpu_pid(s: &str) -> anyhow::Result<(String, u32)> {
    let (label, pid) = match s.split_once('=') {
        Some((l, p)) => (l.to_owned(), p),
        None => (format!("pid {s}"), s),
    };
    let pid = pid
        .trim()
        .parse()
        .with_context(|| format!("--cpu-pid {s}: expected LABEL=PID or PID"))?;
    Ok((label, pid))
}

/// Every `--cpu-pid` argument parsed.
pub fn parse_cpu_pids(args: &[String]) -> anyhow::Result<Vec<(String, u32)>> {
    args.iter().map(|s| parse_cpu_pid(s)).collect()
}

/// CPU microseconds of each process, in order (0 for one that is gone:
/// a killed node must not fail the report).
pub fn cpu_now(pids: &[u32]) -> Vec<u64> {
    cpu_split_now(pids)
        .into_iter()
        .map(|(u, s)| u + s)
        .collect()
}

/// (user, system) CPU microseconds of each process, in order ((0, 0) for
/// one that is gone).
pub fn cpu_split_now(pids: &[u32]) -> Vec<(u64, u64)> {
    pids.iter()
        .map(|&p| cpu_split_micros(p).unwrap_or((0, 0)))
        .collect()
}

/// [`cpu_split_now`] summed over the processes.
pub fn cpu_split_total(pids: &[u32]) -> (u64, u64) {
    cpu_split_now(pids)
        .into_iter()
        .fold((0, 0), |(u, s), (pu, ps)| (u + pu, s + ps))
}

/// The whole machine's CPU time so far, as (busy, total) clock ticks over
/// every core, from the first line of `/proc/stat`: how much of the
/// machine a benchmark had (other jobs share these cores).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_pids_take_an_optional_label() {
        assert_eq!(parse_cpu_pid("a=12").unwrap(), ("a".into(), 12));
        assert_eq!(parse_cpu_pid("12").unwrap(), ("pid 12".into(), 12));
        assert!(parse_cpu_pid("a=x").is_err());
        assert_eq!(parse_cpu_pids(&["r=1".into()]).unwrap().len(), 1);
    }

    #[test]
    fn machine_ticks_count_everything_but_idle() {
        let stat = "cpu  100 5 50 800 45 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_stat(stat), Some((155, 1000)));
        assert!(machine_ticks().is_some());
        assert!((busy_cores((0, 0), (155, 1000), 2) - 0.31).abs() < 1e-9);
    }

    #[test]
    fn a_gone_process_reads_zero() {
        let own = std::process::id();
        let now = cpu_now(&[own, u32::MAX - 1]);
        assert_eq!(now[1], 0);
    }
}
