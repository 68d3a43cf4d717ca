//! The `conn` report: JSON with `--out`, a summary for people.

use serde::Serialize;

use herald_harness::latency::{fmt_us, Summary};

/// The report, printed for people and written as JSON with `--out`.
#[derive(Debug, Serialize)]
pub struct ConnReport {
    pub connections_requested: usize,
    pub connections_ok: usize,
    pub connections_failed: usize,
    pub connect_retries: u64,
    pub connect_errors: Vec<String>,
    pub workers: usize,
    pub connect_secs: f64,
    /// Per connection: first attempt to welcome.
    pub connect_latency: Summary,
    /// Gateway CPU (user + system) during the connect phase, per connection.
    pub gateway_cpu_us_per_connect: f64,
    pub connects_per_sec: f64,
    pub gateway_rss_before_kib: u64,
    pub gateway_rss_idle_kib: u64,
    pub gateway_rss_after_broadcasts_kib: u64,
    pub rss_per_conn_kib: f64,
    pub loadgen_worker_rss_kib: Vec<u64>,
    /// How the workers held their connections (`lean` or `tungstenite`).
    pub client_mode: &'static str,
    /// Worker RSS before `connect` and after the settle, and their
    /// difference over all workers per connection: the load generator's
    /// memory per held connection.
    pub loadgen_worker_rss_before_kib: Vec<u64>,
    pub loadgen_worker_rss_idle_kib: Vec<u64>,
    pub loadgen_rss_per_conn_kib: f64,
    pub rounds: u32,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    pub dropped_connections: usize,
    /// Gateway CPU during the broadcast rounds, per delivered frame.
    pub gateway_cpu_us_per_delivery: f64,
    /// The same, user and system time apart.
    pub gateway_user_us_per_delivery: f64,
    pub gateway_system_us_per_delivery: f64,
    pub delivery_latency: Summary,
    pub all_received: Summary,
    pub per_round_all_received_us: Vec<u64>,
}

pub fn print(r: &ConnReport) {
    println!("== herald-loadtest conn ==");
    println!(
        "connections        {} ok / {} requested ({} failed, {} retried attempts, {} workers)",
        r.connections_ok,
        r.connections_requested,
        r.connections_failed,
        r.connect_retries,
        r.workers
    );
    for e in &r.connect_errors {
        println!("  connect error    {e}");
    }
    println!(
        "connect phase      {:.2} s, {:.0} connections/s, gateway CPU {:.0} µs per connection",
        r.connect_secs, r.connects_per_sec, r.gateway_cpu_us_per_connect
    );
    println!("  per connection   {}", r.connect_latency);
    println!(
        "gateway RSS        {} KiB before, {} KiB idle with connections, {} KiB after broadcasts",
        r.gateway_rss_before_kib, r.gateway_rss_idle_kib, r.gateway_rss_after_broadcasts_kib
    );
    println!(
        "RSS per connection {:.2} KiB (idle - before) / connections",
        r.rss_per_conn_kib
    );
    println!(
        "load-gen RSS       {:.2} KiB per connection ({} client; idle {:?} - before {:?} KiB per worker)",
        r.loadgen_rss_per_conn_kib,
        r.client_mode,
        r.loadgen_worker_rss_idle_kib,
        r.loadgen_worker_rss_before_kib
    );
    println!(
        "broadcast          {} rounds, {} / {} deliveries, {} connections dropped",
        r.rounds, r.deliveries_received, r.deliveries_expected, r.dropped_connections
    );
    println!("  per delivery     {}", r.delivery_latency);
    println!(
        "  gateway CPU      {:.1} µs per delivered frame (user {:.1}, system {:.1}; rounds' CPU / deliveries)",
        r.gateway_cpu_us_per_delivery,
        r.gateway_user_us_per_delivery,
        r.gateway_system_us_per_delivery
    );
    println!(
        "  all received     p50={} p99={} max={} (complete rounds: {})",
        fmt_us(r.all_received.p50_us),
        fmt_us(r.all_received.p99_us),
        fmt_us(r.all_received.max_us),
        r.all_received.count
    );
}
