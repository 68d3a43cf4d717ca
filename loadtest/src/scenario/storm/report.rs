//! The storm's report: JSON for scripts, a summary table for people.

use herald_harness::check::Tally;
use herald_harness::SendStats;
use serde::Serialize;

use super::fleet_report::{
    backoff, met, ms, print_errors_by_kind, print_head, print_landed, print_messages, redis_line,
    FleetUp, RedisLoad,
};
use super::outcome::{Resume, Shares};
use super::presence::PresenceCheck;
use crate::harness::cpu::ProcessCpu;
use crate::harness::report::Table;

#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    pub clients: usize,
    pub victims: Vec<String>,
    pub victim_pids: Vec<u32>,
    pub survivors: Vec<String>,
    /// Clients that started on each victim.
    pub clients_per_victim: Vec<usize>,
    #[serde(flatten)]
    pub up: FleetUp,
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

fn share_row(t: &mut Table, what: &str, s: &Shares) {
    let cell = |v| ms(v, "never");
    t.row([
        what.to_owned(),
        cell(s.p50_ms),
        cell(s.p99_ms),
        cell(s.p100_ms),
    ]);
}

pub fn print(r: &StormReport) {
    let clients = format!(
        "{} on {} victim node(s) {:?} (per victim {:?}), {} survivor(s), {} worker(s)",
        r.clients,
        r.victims.len(),
        r.victims,
        r.clients_per_victim,
        r.survivors.len(),
        r.up.workers
    );
    let backoff = backoff(r.backoff_base_ms, r.backoff_cap_ms);
    print_head("storm", &clients, &r.up, &[backoff]);
    println!(
        "load-gen RSS       {:?} KiB per worker",
        r.up.loadgen_worker_rss_kib
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
    print_landed(&res.landed);
    print_messages(&r.messages, &r.exactly_once, r.offered_rate);
    if let Some(redis) = &r.redis {
        let per_resume = redis.commands_per_resume.map(|c| format!("{c:.1}"));
        println!(
            "{} | {} commands per resume above baseline",
            redis_line(redis, "storm"),
            per_resume.unwrap_or_else(|| "-".into())
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
    print_errors_by_kind(&r.connect_errors_by_kind);
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
        met(r.target_met)
    );
}
