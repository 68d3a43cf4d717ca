//! The parts every fleet run's report shares — `storm`'s, `scaleout`'s and
//! `rolling`'s: how the fleet came up, the report's head, the messages and
//! their exactly-once table, and the lines and figures the three print
//! alike, so that the three reports read alike.

use herald_harness::check::Tally;
use herald_harness::latency::fmt_us;
use herald_harness::SendStats;
use serde::Serialize;

use super::fleet::Fleet;
use crate::harness::report::{percent, Table};
use crate::scenario::conn::fleet::Connected;

/// How the fleet came up: its workers and its connect phase. Flattened
/// into each report's JSON, where these fields stood before it was one.
#[derive(Debug, Clone, Serialize)]
pub struct FleetUp {
    pub workers: usize,
    pub note: Option<String>,
    pub connected_ok: usize,
    pub connect_failed: usize,
    pub connect_secs: f64,
    pub connect_errors: Vec<String>,
    /// Each load-generator worker's RSS once its clients were connected.
    pub loadgen_worker_rss_kib: Vec<u64>,
}

impl FleetUp {
    /// `fleet`'s workers and what its connect phase (`secs` long) gave.
    pub fn new(fleet: &Fleet, note: Option<String>, connected: Connected, secs: f64) -> FleetUp {
        FleetUp {
            workers: fleet.pool.len(),
            note,
            connected_ok: connected.ok,
            connect_failed: connected.failed,
            connect_secs: secs,
            connect_errors: connected.errors,
            loadgen_worker_rss_kib: connected.worker_rss_kib,
        }
    }

    /// The workers' RSS, as the connect line carries it.
    pub fn rss(&self) -> String {
        let rss = &self.loadgen_worker_rss_kib;
        format!("load-gen RSS {rss:?} KiB per worker")
    }
}

/// Redis's load around the event (the kill, the roll).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedisLoad {
    pub sample_ms: u64,
    pub samples: usize,
    /// Mean ops/s over the baseline (before the event).
    pub baseline_ops: Option<f64>,
    /// Peak ops/s over ~100 ms windows over the event (from the kill to
    /// the last resume; from the first SIGTERM to the last step's end).
    pub peak_ops_100ms: Option<f64>,
    /// Peak over 1 s windows, the same span.
    pub peak_ops_1s: Option<f64>,
    /// Mean ops/s over the event.
    pub storm_mean_ops: Option<f64>,
    /// Commands from the kill to the last resume beyond the baseline
    /// rate, per resumed client (`storm` only).
    pub commands_per_resume: Option<f64>,
}

/// The head of a report: its title, the `clients` line, the note, the
/// connect line with `more` after it (`; ` between), and each connect error.
pub fn print_head(scenario: &str, clients: &str, up: &FleetUp, more: &[String]) {
    println!("== herald-loadtest {scenario} ==");
    println!("clients            {clients}");
    if let Some(n) = &up.note {
        println!("note               {n}");
    }
    let connect = format!(
        "{} ok, {} failed in {:.1} s",
        up.connected_ok, up.connect_failed, up.connect_secs
    );
    let line: Vec<&str> = std::iter::once(connect.as_str())
        .chain(more.iter().map(String::as_str))
        .collect();
    println!("connect            {}", line.join("; "));
    for e in &up.connect_errors {
        println!("  connect error    {e}");
    }
}

/// The reconnect backoff, as the connect line carries it.
pub fn backoff(base_ms: u64, cap_ms: u64) -> String {
    format!("backoff full jitter, base {base_ms} ms, cap {cap_ms} ms")
}

/// Where the clients were last welcomed (node id → clients).
pub fn print_landed<'a>(landed: impl IntoIterator<Item = (&'a String, &'a usize)>) {
    let landed: Vec<String> = landed
        .into_iter()
        .map(|(n, c)| format!("{n} {c}"))
        .collect();
    println!("landed on          {}", landed.join(", "));
}

/// Redis's ops/s around the event (`event`: what its mean is called).
pub fn redis_line(redis: &RedisLoad, event: &str) -> String {
    format!(
        "redis ops/s        baseline {} | {event} mean {} | peak {} (100 ms) {} (1 s)",
        ops(redis.baseline_ops),
        ops(redis.storm_mean_ops),
        ops(redis.peak_ops_100ms),
        ops(redis.peak_ops_1s),
    )
}

/// The connect errors of the whole run, by kind.
pub fn print_errors_by_kind(errors: &[(String, u64)]) {
    for (e, n) in errors {
        println!("  {n:>7} x        {e}");
    }
}

/// Milliseconds as the reports print them, `none` where there are none.
pub fn ms(v: Option<f64>, none: &str) -> String {
    v.map(|m| fmt_us((m * 1e3) as u64))
        .unwrap_or_else(|| none.into())
}

/// Ops/s as the reports print them.
pub fn ops(v: Option<f64>) -> String {
    v.map(|o| format!("{o:.0}")).unwrap_or_else(|| "-".into())
}

/// A target's verdict.
pub fn met(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "NOT MET"
    }
}

/// What was sent (at `rate` a second) and the exactly-once table.
pub fn print_messages(m: &SendStats, x: &Tally<usize>, rate: f64) {
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
