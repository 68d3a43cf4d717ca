//! The `mark` report: JSON with `--out`, a summary for people.

use herald_harness::latency::{fmt_us, Summary};
use serde::Serialize;

use crate::harness::cpu::ProcessCpu;

/// The outcome of the measured trial.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MarkReport {
    pub node_a: String,
    pub node_b: String,
    pub users: u32,
    pub messages_per_user: u32,
    pub offered_rate: f64,
    pub duration_secs: u64,
    pub scheduled: u64,
    /// Marks written to a marker connection.
    pub sent: u64,
    /// Marks not sent because every user had one in flight.
    pub skipped_busy: u64,
    /// Marks that could not be handed to their connection (it had closed).
    pub send_errors: u64,
    pub replies_ok: u64,
    pub reply_errors: u64,
    pub reply_timeouts: u64,
    /// `ok` replies saying no message changed state (should stay 0).
    pub unchanged: u64,
    pub counts_received: u64,
    pub counts_timeouts: u64,
    /// Marks with both an `ok` reply and the counts push on B.
    pub completed: u64,
    /// `completed` per second of the sending phase.
    pub achieved_rate: f64,
    /// mark sent on A → its reply on A.
    pub reply_latency: Summary,
    /// mark sent on A → matching `counts` frame on B.
    pub counts_latency: Summary,
    /// Scheduled time → sent: how far the load generator lagged.
    pub dispatch_lag: Summary,
    pub markers_live: u64,
    pub watchers_live: u64,
    pub max_p99_ms: f64,
    /// p99 of the counts push within `max_p99_ms`, no error or timeout, and
    /// at least 95% of the offered rate completed.
    pub target_met: bool,
    /// Per `--cpu-pid` process, then the load generator itself.
    pub cpu: Vec<ProcessCpu>,
    /// Sum over the `--cpu-pid` processes (not the load generator).
    pub cpu_us_per_mark: Option<f64>,
    pub first_error: Option<String>,
}

pub fn target_met(r: &MarkReport) -> bool {
    r.completed > 0
        && r.achieved_rate >= 0.95 * r.offered_rate
        && r.skipped_busy == 0
        && r.send_errors == 0
        && r.reply_errors == 0
        && r.reply_timeouts == 0
        && r.counts_timeouts == 0
        && r.counts_latency.p99_us as f64 <= r.max_p99_ms * 1000.0
}

pub fn print(r: &MarkReport) {
    println!(
        "mark A→B: users {} ({} msgs each) offered {:.0}/s achieved {:.0}/s over {}s | sent {} completed {} skipped-busy {} send-errors {}",
        r.users,
        r.messages_per_user,
        r.offered_rate,
        r.achieved_rate,
        r.duration_secs,
        r.sent,
        r.completed,
        r.skipped_busy,
        r.send_errors,
    );
    println!(
        "  mark → reply on A:  {} | ok {} errors {} timeouts {} unchanged {}",
        r.reply_latency, r.replies_ok, r.reply_errors, r.reply_timeouts, r.unchanged
    );
    println!(
        "  mark → counts on B: {} | received {} timeouts {}",
        r.counts_latency, r.counts_received, r.counts_timeouts
    );
    println!("  dispatch lag:       {}", r.dispatch_lag);
    println!(
        "  target: counts p99 {} <= {}ms at {:.0}/s, no errors: {}",
        fmt_us(r.counts_latency.p99_us),
        r.max_p99_ms,
        r.offered_rate,
        if r.target_met { "MET" } else { "NOT MET" }
    );
    if !r.cpu.is_empty() {
        let part = |c: &ProcessCpu| match c.share.figure() {
            Some(us) => format!("{} {us:.1}µs", c.label),
            None => format!("{} -", c.label),
        };
        let parts: Vec<String> = r.cpu.iter().map(part).collect();
        let sum = (r.cpu_us_per_mark)
            .map(|s| format!(" (measured processes together {s:.1}µs)"))
            .unwrap_or_default();
        println!("  CPU per mark: {}{sum}", parts.join(", "));
    }
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
    if r.markers_live < u64::from(r.users) || r.watchers_live < u64::from(r.users) {
        println!(
            "  warning: {} markers and {} watchers of {} users still open",
            r.markers_live, r.watchers_live, r.users
        );
    }
}
