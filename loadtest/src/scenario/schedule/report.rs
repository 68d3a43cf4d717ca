//! The `schedule` report: one row per phase (JSON with `--out`, lines for
//! people).

use serde::Serialize;

use crate::harness::cpu::ProcessCpu;

/// One phase: many scheduled sends (or snoozes) due in the same second.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseReport {
    /// `deliver` (scheduled sends) or `wake` (snoozes).
    pub phase: &'static str,
    /// Sends scheduled, or messages snoozed.
    pub items: usize,
    /// Users they belong to.
    pub users: usize,
    /// Seconds it took to schedule (or snooze) them all.
    pub setup_secs: f64,
    /// Refused or failed setup requests (each is a batch or a mark).
    pub setup_errors: u64,
    pub first_error: Option<String>,
    /// From the due time to the index read empty: everything delivered
    /// (or woken) and recorded so; `None` if not within the run's limits.
    pub done_after_due_ms: Option<u64>,
    /// Deliveries per second, due time to done.
    pub per_sec: Option<f64>,
    /// Receivers whose inbox (or counts) was not what exactly once gives.
    pub wrong_users: usize,
    /// Messages missing, and beyond the first of each.
    pub missing: usize,
    pub duplicates: usize,
    /// Per `--cpu-pid` process, then the load generator, from the due time
    /// to done, per item.
    pub cpu: Vec<ProcessCpu>,
    pub target_secs: f64,
    /// Done within the target, everything exactly once.
    pub target_met: bool,
}

impl PhaseReport {
    /// With what follows from the rest: the rate and the verdict.
    pub fn judged(mut self) -> Self {
        let done = self.done_after_due_ms;
        self.per_sec = done.map(|ms| self.items as f64 / (ms.max(1) as f64 / 1000.0));
        self.target_met = self.setup_errors == 0
            && self.wrong_users == 0
            && done.is_some_and(|ms| ms as f64 <= self.target_secs * 1000.0);
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleReport {
    pub gateways: Vec<String>,
    pub phases: Vec<PhaseReport>,
    pub all_met: bool,
}

pub fn print(report: &ScheduleReport) {
    for p in &report.phases {
        let done = p.done_after_due_ms.map_or("not done".into(), |ms| {
            format!("{:.2} s", ms as f64 / 1000.0)
        });
        println!(
            "{:<8} items={} users={} setup={:.1}s (errors {}) done after due: {} ({}/s) wrong users={} missing={} duplicates={} target<={}s: {}",
            p.phase,
            p.items,
            p.users,
            p.setup_secs,
            p.setup_errors,
            done,
            p.per_sec.map_or("-".into(), |r| format!("{r:.0}")),
            p.wrong_users,
            p.missing,
            p.duplicates,
            p.target_secs,
            if p.target_met { "met" } else { "MISSED" },
        );
        for c in &p.cpu {
            println!(
                "         cpu {:<10} {:>8.1} ms  ({:.1} us per item)",
                c.label,
                c.cpu_us as f64 / 1000.0,
                c.share.figure().unwrap_or(0.0)
            );
        }
        if let Some(e) = &p.first_error {
            println!("         first error: {e}");
        }
    }
    println!(
        "schedule: {}",
        if report.all_met {
            "all targets met"
        } else {
            "TARGET MISSED"
        }
    );
}
