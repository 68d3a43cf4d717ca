//! The `unicast` report: one row per trial (JSON with `--out`, a line for
//! people).

use herald_harness::latency::{fmt_us, Summary};
use serde::Serialize;

/// The outcome of one trial at one offered rate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrialReport {
    pub via: String,
    /// Messages per HTTP request at most (1 for ws).
    pub batch: u16,
    pub offered_rate: f64,
    pub duration_secs: u64,
    pub scheduled: u64,
    pub dispatched: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub achieved_rate: f64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub receivers_live: u64,
    pub latency: Summary,
    /// CPU of the `--cpu-pid` processes during the trial per accepted message.
    pub cpu_us_per_msg: Option<f64>,
    /// The same, per process.
    pub cpu: Vec<CpuPerMsg>,
    pub sustained: bool,
    pub first_error: Option<String>,
}

/// One `--cpu-pid` process's CPU during a trial, per accepted message.
#[derive(Debug, Clone, Serialize)]
pub struct CpuPerMsg {
    pub label: String,
    pub user_us_per_msg: f64,
    pub system_us_per_msg: f64,
}

/// Whether a trial counts as sustained: the sender kept up (≥ 95% of the
/// offered rate), nothing accepted was lost or refused, and p99 stayed low.
pub fn is_sustained(r: &TrialReport, max_p99_us: u64) -> bool {
    r.achieved_rate >= 0.95 * r.offered_rate
        && r.lost == 0
        && r.rejected == 0
        && r.received > 0
        && r.latency.p99_us <= max_p99_us
}

pub fn print(r: &TrialReport) {
    println!(
        "unicast via {}{} offered {:.0}/s achieved {:.0}/s | sent {} accepted {} rejected {} received {} lost {} dup {} | p50 {} p99 {} p999 {} max {} | {}",
        r.via,
        if r.batch > 1 {
            format!(" (batch {})", r.batch)
        } else {
            String::new()
        },
        r.offered_rate,
        r.achieved_rate,
        r.dispatched,
        r.accepted,
        r.rejected,
        r.received,
        r.lost,
        r.duplicates,
        fmt_us(r.latency.p50_us),
        fmt_us(r.latency.p99_us),
        fmt_us(r.latency.p999_us),
        fmt_us(r.latency.max_us),
        if r.sustained { "SUSTAINED" } else { "not sustained" }
    );
    if let Some(cpu) = r.cpu_us_per_msg {
        let part = |c: &CpuPerMsg| {
            let (u, s) = (c.user_us_per_msg, c.system_us_per_msg);
            format!("{} {:.1} (user {u:.1} sys {s:.1})", c.label, u + s)
        };
        let parts: Vec<String> = r.cpu.iter().map(part).collect();
        println!(
            "  CPU of measured processes: {cpu:.1} µs per message = {}",
            parts.join(" + ")
        );
    }
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
    if r.receivers_live == 0 {
        println!("  warning: no receiver connection is open");
    }
}
