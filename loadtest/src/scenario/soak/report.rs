//! The soak's report: JSON for scripts, a table of windows for people.

use herald_harness::check::Tally;
use herald_harness::latency::fmt_us;
use herald_harness::SendStats;
use serde::Serialize;

use super::window::{Drift, Window};
use crate::harness::report::Table;

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub gateways: Vec<String>,
    pub clients: u64,
    pub duration_secs: u64,
    pub window_secs: u64,
    pub unicast_rate: f64,
    pub broadcast_every_secs: u64,
    pub mark_rate: f64,
    pub churn_rate: f64,
    pub connect_secs: f64,
    /// The gateways' RSS before any client, and once all were connected.
    pub rss_before_kib: u64,
    pub rss_connected_kib: u64,
    pub loadgen_rss_kib: u64,
    pub windows: Vec<Window>,
    pub drift: Option<Drift>,
    pub messages: SendStats,
    pub broadcasts_sent: u64,
    /// Every accepted unicast message against what its client received.
    pub exactly_once: Tally<usize>,
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

pub fn print(r: &SoakReport) {
    println!("== herald-loadtest soak ==");
    println!(
        "mix                {} clients on {} gateway(s) for {} s: unicast {:.0}/s, a broadcast every {} s, marks {:.0}/s, churn {:.1}/s",
        r.clients,
        r.gateways.len(),
        r.duration_secs,
        r.unicast_rate,
        r.broadcast_every_secs,
        r.mark_rate,
        r.churn_rate
    );
    println!(
        "connect            {:.1} s; gateway RSS {} MiB before, {} MiB connected; load-gen RSS {} MiB",
        r.connect_secs,
        mib(r.rss_before_kib),
        mib(r.rss_connected_kib),
        mib(r.loadgen_rss_kib)
    );
    let mut t = Table::new([
        "window",
        "end",
        "RSS MiB",
        "unicast p50",
        "p99",
        "bcast p99",
        "mark p99",
        "reconn p99",
        "sent",
        "recv",
        "churn",
        "ends",
        "redis ops/s",
        "gw cores",
    ]);
    for w in &r.windows {
        let cores: f64 = w.cpu_cores.iter().sum();
        t.row([
            w.index.to_string(),
            format!("{:.0}s", w.end_secs),
            mib(w.rss_total_kib),
            fmt_us(w.unicast.p50_us),
            fmt_us(w.unicast.p99_us),
            fmt_us(w.broadcast.p99_us),
            fmt_us(w.mark.p99_us),
            fmt_us(w.reconnect.p99_us),
            w.unicast_sent.to_string(),
            w.unicast_received.to_string(),
            w.churned.to_string(),
            w.unexpected_ends.to_string(),
            w.redis_ops
                .map(|o| format!("{o:.0}"))
                .unwrap_or_else(|| "-".into()),
            format!("{cores:.2}"),
        ]);
    }
    t.print();
    if let Some(d) = &r.drift {
        println!(
            "drift              RSS {} → {} MiB ({:+} KiB, {:+.1}%, slope {:+.0} KiB/min); unicast p50 {} → {}, p99 {} → {}; mark p99 {} → {}",
            mib(d.rss_first_kib),
            mib(d.rss_last_kib),
            d.rss_change_kib,
            d.rss_change_pct,
            d.rss_slope_kib_per_min,
            fmt_us(d.unicast_p50_first_us),
            fmt_us(d.unicast_p50_last_us),
            fmt_us(d.unicast_p99_first_us),
            fmt_us(d.unicast_p99_last_us),
            fmt_us(d.mark_p99_first_us),
            fmt_us(d.mark_p99_last_us),
        );
    }
    let m = &r.messages;
    let x = &r.exactly_once;
    println!(
        "messages           {} sent, {} accepted, {} refused, {} no answer; {} broadcasts",
        m.dispatched, m.accepted, m.refused, m.unknown, r.broadcasts_sent
    );
    println!(
        "exactly once       {}: {} of {} delivered, lost {}, doubled {}, gaps {}, wrong seq {} (redelivered {}, resent by sync {})",
        if x.exactly_once { "yes" } else { "NO" },
        x.delivered,
        x.accepted,
        x.lost,
        x.faults.doubled,
        x.faults.gaps,
        x.wrong_seq,
        x.faults.redelivered,
        x.faults.resent_by_sync
    );
}
