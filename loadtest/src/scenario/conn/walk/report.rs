//! The walk's report: a row per step (JSON with `--out`, rewritten after
//! every step, and a table for people).

use herald_harness::latency::{fmt_us, Summary};
use herald_harness::machine::MemInfo;
use serde::Serialize;

use super::redis::RedisMemory;

/// One step's figures.
#[derive(Debug, Serialize)]
pub struct StepReport {
    pub step: usize,
    pub target: usize,
    /// Connections held after the step (welcomed and not closed since).
    pub held: usize,
    /// Opened, failed and never attempted (halted) in this step.
    pub opened: usize,
    pub failed: usize,
    pub skipped: usize,
    pub retries: u64,
    pub connect_errors: Vec<String>,
    pub gateways: usize,
    pub workers: usize,
    /// From the `add` to the last welcome of the step.
    pub connect_secs: f64,
    pub connects_per_sec: f64,
    pub connect_latency: Summary,
    /// Gateway processes whose PID is known: RSS now, RSS when each was
    /// started (before any connection), and (now − start) / held.
    pub gateway_rss_kib: u64,
    pub gateway_rss_base_kib: u64,
    pub gateway_rss_per_conn_kib: f64,
    /// /proc/meminfo Slab and SUnreclaim now, and their growth since
    /// before the walk per held connection (both socket ends on one host).
    pub slab_kib: u64,
    pub sunreclaim_kib: u64,
    pub slab_per_conn_kib: f64,
    pub sunreclaim_per_conn_kib: f64,
    /// Redis `used_memory` / `used_memory_rss` now, and `used_memory`'s
    /// growth since before the walk per held connection.
    pub redis_used_memory_kib: Option<u64>,
    pub redis_used_memory_rss_kib: Option<u64>,
    pub redis_used_per_conn_kib: Option<f64>,
    /// The worker processes' RSS now, and (now − at start) / held.
    pub loadgen_rss_kib: u64,
    pub loadgen_rss_per_conn_kib: f64,
    /// MemAvailable before the step, idle after it (before the broadcast),
    /// and the lowest seen during the step (broadcast included).
    pub mem_available_before_kib: u64,
    pub mem_available_idle_kib: u64,
    pub mem_available_min_kib: u64,
    /// (MemAvailable before the walk − idle now) / held: what a connection
    /// costs the machine, everything included.
    pub mem_used_per_conn_kib: f64,
    pub broadcast: Option<BroadcastReport>,
    pub step_secs: f64,
    /// Since the walk started.
    pub elapsed_secs: f64,
    /// Why the connect phase was cut short, if it was.
    pub halted: Option<String>,
}

/// The one broadcast of a step.
#[derive(Debug, Serialize)]
pub struct BroadcastReport {
    pub received: usize,
    pub expected: usize,
    pub dropped: usize,
    pub duplicates: u64,
    /// Every held connection had it.
    pub complete: bool,
    /// From the POST to the last connection's delivery.
    pub all_received_us: u64,
    pub delivery_latency: Summary,
    pub gateway_cpu_us_per_delivery: f64,
    /// The lowest MemAvailable from the POST to the last report.
    pub mem_available_min_kib: u64,
}

/// The whole walk.
#[derive(Debug, Default, Serialize)]
pub struct WalkReport {
    pub steps_requested: Vec<usize>,
    pub per_gateway: usize,
    pub per_worker: usize,
    pub mem_floor_mib: u64,
    pub timeout_secs: u64,
    pub client_mode: &'static str,
    /// Before anything was started.
    pub baseline: MemInfo,
    pub redis_baseline: Option<RedisMemory>,
    pub steps: Vec<StepReport>,
    /// Every step done; otherwise `stop_reason` says what stopped the walk.
    pub completed: bool,
    pub stop_reason: String,
    pub max_held: usize,
    pub elapsed_secs: f64,
}

/// The table's column widths; cells are right-aligned.
const WIDTHS: [usize; 13] = [4, 9, 7, 12, 8, 8, 8, 8, 8, 7, 20, 12, 8];

fn print_line(cells: impl IntoIterator<Item = String>) {
    let cells: Vec<String> = (cells.into_iter().zip(WIDTHS))
        .map(|(cell, w)| format!("{cell:>w$}"))
        .collect();
    println!("{}", cells.join(" "));
}

pub fn print_header() {
    for line in [
        "step|held|gw/wk|connect|gw KiB|slab|unrecl|redis|loadgen|all|broadcast all rcvd|avail idle/|elapsed",
        "|||s (conn/s)|/conn|KiB/conn|KiB/conn|KiB/conn|KiB/conn|KiB/conn|(got/want)|min MiB|s",
    ] {
        print_line(line.split('|').map(String::from));
    }
}

pub fn print_row(s: &StepReport) {
    let bcast = match &s.broadcast {
        Some(b) => format!(
            "{} ({}/{})",
            fmt_us(b.all_received_us),
            b.received,
            b.expected
        ),
        None => "skipped".into(),
    };
    let kib = |v: f64| format!("{v:.2}");
    print_line([
        s.step.to_string(),
        s.held.to_string(),
        format!("{}/{}", s.gateways, s.workers),
        format!("{:.1} ({:.0})", s.connect_secs, s.connects_per_sec),
        kib(s.gateway_rss_per_conn_kib),
        kib(s.slab_per_conn_kib),
        kib(s.sunreclaim_per_conn_kib),
        s.redis_used_per_conn_kib.map_or("-".into(), kib),
        kib(s.loadgen_rss_per_conn_kib),
        format!("{:.1}", s.mem_used_per_conn_kib),
        bcast,
        format!(
            "{}/{}",
            s.mem_available_idle_kib / 1024,
            s.mem_available_min_kib / 1024
        ),
        format!("{:.1}", s.elapsed_secs),
    ]);
    if s.failed > 0 || s.skipped > 0 {
        println!(
            "     step {}: {} failed, {} not attempted; errors: {:?}",
            s.step, s.failed, s.skipped, s.connect_errors
        );
    }
    if let Some(h) = &s.halted {
        println!("     step {} cut short: {h}", s.step);
    }
}
