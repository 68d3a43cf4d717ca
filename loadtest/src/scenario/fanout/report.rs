//! The `fanout` report: one row per publish (JSON with `--out`, a table for
//! people).

use herald_harness::latency::{fmt_us, Summary};
use serde::Serialize;

use crate::harness::cpu::ProcessCpu;
use crate::harness::report::{opt_us, Table};

/// One publish.
#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    pub round: u32,
    pub job: String,
    /// `subscribers` of the 202 answer.
    pub subscribers_accepted: u64,
    /// The job's `total` at its last poll.
    pub job_total: u64,
    /// The job's `done` at its last poll.
    pub job_done: u64,
    /// The job's `state` at its last poll.
    pub job_state: String,
    /// From sending the POST to its 202.
    pub accepted_us: u64,
    /// From sending the POST to the answer of the first poll that said
    /// `done` (or `failed`); `None` if neither came in time.
    pub job_done_us: Option<u64>,
    /// From sending the POST to the last live receiver's delivery.
    pub last_receiver_us: u64,
    /// The later of the two: the publish is complete.
    pub complete_us: Option<u64>,
    /// Messages appended per second (job total / time to done).
    pub messages_per_sec: Option<f64>,
    /// Connections open when the round was reported.
    pub receivers_live: usize,
    pub received: usize,
    /// Live receivers without the message.
    pub missing: usize,
    /// Deliveries beyond the first of this round to a connection.
    pub duplicates: u64,
    pub dropped_connections: usize,
    /// From sending the POST to each live receiver's delivery.
    pub delivery_latency: Summary,
    pub polls: u64,
    pub poll_errors: u64,
    /// (ms after the POST, the job's `done`) whenever a poll saw it change.
    pub progress: Vec<(u64, u64)>,
    /// Per `--cpu-pid` process, then the load generator (coordinator and
    /// workers together), from before the POST to the end of the round.
    pub cpu: Vec<ProcessCpu>,
    /// Sum over the `--cpu-pid` processes, per message.
    pub servers_cpu_us_per_message: Option<f64>,
    /// Every live receiver got the message once, the job is done and its
    /// total is the number of subscribers.
    pub correct: bool,
    /// Correct, and complete within `--target-secs`.
    pub target_met: bool,
    pub first_error: Option<String>,
}

/// The whole run, printed for people and written as JSON with `--out`.
#[derive(Debug, Serialize)]
pub struct FanoutReport {
    pub topic: String,
    pub gateways: Vec<String>,
    pub subscribers: u64,
    pub subscribed_ok: u64,
    pub subscribe_failed: u64,
    pub subscribe_retries: u64,
    pub subscribe_errors: Vec<String>,
    pub subscribe_secs: f64,
    pub subscribes_per_sec: f64,
    /// Per successful `PUT`.
    pub subscribe_latency: Summary,
    /// The topic's subscriber count before the first publish.
    pub topic_total: u64,
    pub receivers_requested: usize,
    pub receivers_ok: usize,
    pub receivers_failed: usize,
    pub connect_errors: Vec<String>,
    pub workers: usize,
    pub connect_secs: f64,
    pub loadgen_worker_rss_kib: Vec<u64>,
    pub target_secs: f64,
    pub rounds: Vec<RoundReport>,
    /// Duplicate deliveries over the whole run, counted `--grace` seconds
    /// after the last round.
    pub duplicates_total: u64,
    pub all_rounds_met: bool,
}

pub fn print(r: &FanoutReport) {
    println!("== herald-loadtest fanout ==");
    println!(
        "topic              {} on {} gateway(s); the publish and job polls go to {}",
        r.topic,
        r.gateways.len(),
        r.gateways.first().map(String::as_str).unwrap_or("-")
    );
    println!(
        "subscribe          {} ok / {} ({} failed, {} retried) in {:.1} s, {:.0}/s; topic count {}",
        r.subscribed_ok,
        r.subscribers,
        r.subscribe_failed,
        r.subscribe_retries,
        r.subscribe_secs,
        r.subscribes_per_sec,
        r.topic_total
    );
    println!("  per request      {}", r.subscribe_latency);
    for e in &r.subscribe_errors {
        println!("  subscribe error  {e}");
    }
    println!(
        "receivers          {} ok / {} ({} failed, {} workers) connected in {:.2} s; load-gen RSS {:?} KiB",
        r.receivers_ok,
        r.receivers_requested,
        r.receivers_failed,
        r.workers,
        r.connect_secs,
        r.loadgen_worker_rss_kib
    );
    for e in &r.connect_errors {
        println!("  connect error    {e}");
    }
    let mut t = Table::new([
        "round",
        "202",
        "job done",
        "last recv",
        "complete",
        "msgs/s",
        "received",
        "dup",
        "total / subs",
        "target",
    ]);
    for x in &r.rounds {
        let verdict = match (x.target_met, x.correct) {
            (true, _) => "MET",
            (false, true) => "slow",
            (false, false) => "FAILED",
        };
        t.row([
            x.round.to_string(),
            fmt_us(x.accepted_us),
            opt_us(x.job_done_us),
            fmt_us(x.last_receiver_us),
            opt_us(x.complete_us),
            x.messages_per_sec.map_or("-".into(), |m| format!("{m:.0}")),
            format!("{}/{}", x.received, x.received + x.missing),
            x.duplicates.to_string(),
            format!("{}/{}", x.job_total, x.subscribers_accepted),
            verdict.into(),
        ]);
    }
    t.print();
    for x in &r.rounds {
        let parts: Vec<String> = x
            .cpu
            .iter()
            .map(|c| format!("{} {:.1}", c.label, c.share.figure().unwrap_or_default()))
            .collect();
        let sum = x
            .servers_cpu_us_per_message
            .map(|s| format!(" (servers together {s:.1})"))
            .unwrap_or_default();
        println!(
            "  round {} CPU µs per message: {}{sum}; per delivery {}",
            x.round,
            parts.join(", "),
            x.delivery_latency
        );
        if x.job_state != "done" {
            println!(
                "  round {} job ended {} at {} of {}",
                x.round, x.job_state, x.job_done, x.job_total
            );
        }
        if let Some(e) = &x.first_error {
            println!("  round {} first error: {e}", x.round);
        }
    }
    println!(
        "exactly once       {} duplicate deliveries over the run (counted after the grace)",
        r.duplicates_total
    );
    println!(
        "target             complete within {:.1} s, every live receiver once, job total = subscribers: {}",
        r.target_secs,
        if r.all_rounds_met { "MET" } else { "NOT MET" }
    );
}
