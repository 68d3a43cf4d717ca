//! The storm's report: JSON for scripts, a summary table for people.

use herald_harness::check::Tally;
use herald_harness::latency::fmt_us;
use herald_harness::SendStats;
use serde::Serialize;

use super::outcome::{Resume, Shares};
use super::presence::PresenceCheck;
use crate::harness::cpu::ProcessCpu;
use crate::harness::report::{percent, Table};

/// Redis's load around the kill.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedisLoad {
    pub sample_ms: u64,
    pub samples: usize,
    /// Mean ops/s over the baseline (before the kill).
    pub baseline_ops: Option<f64>,
    /// Peak ops/s over ~100 ms windows from the kill to the last resume.
    pub peak_ops_100ms: Option<f64>,
    /// Peak over 1 s windows, the same span.
    pub peak_ops_1s: Option<f64>,
    /// Mean ops/s from the kill to the last resume.
    pub storm_mean_ops: Option<f64>,
    /// Commands from the kill to the last resume beyond the baseline
    /// rate, per resumed client.
    pub commands_per_resume: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    pub clients: usize,
    pub victims: Vec<String>,
    pub victim_pids: Vec<u32>,
    pub survivors: Vec<String>,
    /// Clients that started on each victim.
    pub clients_per_victim: Vec<usize>,
    pub workers: usize,
    pub note: Option<String>,
    pub connected_ok: usize,
    pub connect_failed: usize,
    pub connect_secs: f64,
    pub connect_errors: Vec<String>,
    /// Each load-generator worker's RSS once its clients were connected.
    pub loadgen_worker_rss_kib: Vec<u64>,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    pub offered_rate: f64,
    /// Unix µs of the kill.
    pub kill_at_us: u64,
    pub victims_gone: bool,
    /// From the kill until the last resume (or the give-up), in seconds.
    pub storm_secs: f64,
    pub resume: Resume,
    pub target_secs: f64,
    /// 100% resumed within `target_secs`, exactly once, and the
    /// survivors' presence right afterwards.
    pub target_met: bool,
    /// The survivors' presence against the clients' own count, after the
    /// tail (see `presence.rs`).
    pub presence: PresenceCheck,
    pub messages: SendStats,
    pub exactly_once: Tally<usize>,
    pub redis: Option<RedisLoad>,
    /// The `--cpu-pid` processes, then the load generator (coordinator
    /// and workers), from the kill until every client resumed.
    pub cpu: Vec<ProcessCpu>,
    /// Busy cores of the whole machine over the same span (other jobs
    /// share it: what was left for the run).
    pub machine_busy_cores: f64,
    pub machine_cores: usize,
    /// Connect errors over the run (message, count).
    pub connect_errors_by_kind: Vec<(String, u64)>,
}

fn ms(v: Option<f64>) -> String {
    v.map(|m| fmt_us((m * 1e3) as u64))
        .unwrap_or_else(|| "never".into())
}

fn ops(v: Option<f64>) -> String {
    v.map(|o| format!("{o:.0}")).unwrap_or_else(|| "-".into())
}

fn share_row(t: &mut Table, what: &str, s: &Shares) {
    t.row([what.to_owned(), ms(s.p50_ms), ms(s.p99_ms), ms(s.p100_ms)]);
}

pub fn print(r: &StormReport) {
    println!("== herald-loadtest storm ==");
    println!(
        "clients            {} on {} victim node(s) {:?} (per victim {:?}), {} survivor(s), {} worker(s)",
        r.clients,
        r.victims.len(),
        r.victims,
        r.clients_per_victim,
        r.survivors.len(),
        r.workers
    );
    if let Some(n) = &r.note {
        println!("note               {n}");
    }
    println!(
        "connect            {} ok, {} failed in {:.1} s; backoff full jitter, base {} ms, cap {} ms",
        r.connected_ok, r.connect_failed, r.connect_secs, r.backoff_base_ms, r.backoff_cap_ms
    );
    for e in &r.connect_errors {
        println!("  connect error    {e}");
    }
    println!(
        "load-gen RSS       {:?} KiB per worker",
        r.loadgen_worker_rss_kib
    );
    let res = &r.resume;
    println!(
        "kill -9            {:?} (gone: {}); {} clients lost their connection, {} resumed, {} never, {} dropped before the kill",
        r.victim_pids, r.victims_gone, res.lost, res.resumed, res.never_resumed, res.dropped_before_kill
    );
    let mut t = Table::new(["after the kill", "50%", "99%", "100%"]);
    share_row(&mut t, "noticed the close", &res.noticed);
    share_row(&mut t, "welcomed by a survivor", &res.welcomed);
    share_row(&mut t, "resumed (sync answered)", &res.resumed_after);
    t.print();
    println!(
        "attempts           {} failed connects; per client p50 {} p99 {} max {}; lost again after resuming: {}",
        res.refused_attempts, res.attempts[0], res.attempts[1], res.attempts[2], res.lost_again
    );
    let landed: Vec<String> = res.landed.iter().map(|(n, c)| format!("{n} {c}")).collect();
    println!("landed on          {}", landed.join(", "));
    print_messages(&r.messages, &r.exactly_once, r.offered_rate);
    if let Some(redis) = &r.redis {
        println!(
            "redis ops/s        baseline {} | storm mean {} | peak {} (100 ms) {} (1 s) | {} commands per resume above baseline",
            ops(redis.baseline_ops),
            ops(redis.storm_mean_ops),
            ops(redis.peak_ops_100ms),
            ops(redis.peak_ops_1s),
            redis.commands_per_resume.map(|c| format!("{c:.1}")).unwrap_or_else(|| "-".into())
        );
    }
    let cpu: Vec<String> = r
        .cpu
        .iter()
        .map(|c| format!("{} {:.2}", c.label, c.share.figure().unwrap_or_default()))
        .collect();
    println!(
        "CPU during storm   {} (cores); whole machine {:.2} of {} busy",
        cpu.join(", "),
        r.machine_busy_cores,
        r.machine_cores
    );
    for (e, n) in &r.connect_errors_by_kind {
        println!("  {n:>7} x        {e}");
    }
    let p = &r.presence;
    println!(
        "presence           {} online by the clients' count; online_users {} (first read {}); {} of {} sampled users without exactly one connection (first read {}); {}",
        p.clients_online,
        p.online_users,
        p.online_users_first,
        p.wrong,
        p.sampled,
        p.wrong_first,
        match p.correct_after_secs {
            Some(s) => format!("correct after {s:.1} s"),
            None => "NOT correct within the timeout".into(),
        }
    );
    println!(
        "target             100% resumed within {:.0} s, nothing lost or doubled, presence right: {}",
        r.target_secs,
        if r.target_met { "MET" } else { "NOT MET" }
    );
}

/// What was sent (at `rate` a second) and the exactly-once table.
pub(crate) fn print_messages(m: &SendStats, x: &Tally<usize>, rate: f64) {
    println!(
        "messages           {} sent at {rate:.0}/s through the API: {} accepted, {} refused, {} no answer; 202 in {}",
        m.dispatched, m.accepted, m.refused, m.unknown, m.accept_latency
    );
    if let Some(e) = &m.first_error {
        println!("  first error      {e}");
    }
    let mut t = Table::new(["exactly once", "count"]);
    for (what, n) in [
        ("accepted", x.accepted),
        ("delivered", x.delivered),
        ("lost (by id)", x.lost),
        ("lost (by seq)", x.lost_by_seq),
        ("doubled", x.faults.doubled),
        ("wrong seq", x.wrong_seq),
        ("gaps", x.faults.gaps),
        ("seq reused", x.faults.seq_reused),
        ("id reused", x.faults.id_reused),
        ("redelivered (info)", x.faults.redelivered),
        ("resent by sync (info)", x.faults.resent_by_sync),
        ("unexpected (info)", x.unexpected),
    ] {
        t.row([what.to_owned(), n.to_string()]);
    }
    t.print();
    println!(
        "exactly once       {} ({} of accepted delivered)",
        if x.exactly_once { "yes" } else { "NO" },
        percent(x.delivered, x.accepted)
    );
    for a in &x.lost_examples {
        println!(
            "  lost             user {} seq {} id {}",
            a.user, a.seq, a.id
        );
    }
}
