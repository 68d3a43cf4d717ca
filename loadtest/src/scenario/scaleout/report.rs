//! The scale-out's report: JSON for scripts, a summary for people.

use std::collections::BTreeMap;

use herald_harness::check::Tally;
use herald_harness::latency::Summary;
use herald_harness::SendStats;
use serde::Serialize;

use super::nodes::{NodeCounts, Sample};
use crate::harness::report::Table;
use crate::scenario::storm::fleet_report::{
    met, ms, print_errors_by_kind, print_head, print_landed, print_messages, FleetUp,
};
use crate::scenario::storm::outcome::quantile;
use crate::scenario::storm::pipe::ClientOutcome;

/// The clients' moves after the start, from their episodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Moves {
    /// `reconnect` frames the clients received after the start.
    pub frames: u64,
    /// … and before it (two balanced nodes: 0).
    pub frames_before: u64,
    pub clients_moved: usize,
    /// Clients asked to move more than once.
    pub moved_again: usize,
    /// Connections that ended after the start (moves, and any other end).
    pub ended: usize,
    /// Of those, not resumed by the end.
    pub unresumed: usize,
    /// From a connection's end to its resume, ms: p50, p99, max.
    pub offline_ms: [Option<f64>; 3],
    /// Failed connects after the start (refused by a moving node's door,
    /// or a node not started yet).
    pub refused_attempts: u64,
}

/// [`Moves`] of `clients` from `start_us` on.
pub fn moves(clients: &[ClientOutcome], start_us: u64) -> Moves {
    let mut m = Moves::default();
    let mut offline = Vec::new();
    for c in clients {
        m.frames += u64::from(c.moves);
        m.clients_moved += usize::from(c.moves > 0);
        m.moved_again += usize::from(c.moves > 1);
        for e in c.episodes.iter().filter(|e| e.lost_us >= start_us) {
            m.ended += 1;
            m.refused_attempts += u64::from(e.refused);
            match e.resumed_us {
                Some(r) => offline.push(r.saturating_sub(e.lost_us)),
                None => m.unresumed += 1,
            }
        }
    }
    offline.sort_unstable();
    let n = offline.len();
    m.offline_ms = [0.5, 0.99, 1.0].map(|q| quantile(&offline, n, q).map(|us| us as f64 / 1e3));
    m
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleoutReport {
    pub clients: usize,
    pub first: Vec<String>,
    pub new: Vec<String>,
    #[serde(flatten)]
    pub up: FleetUp,
    pub offered_rate: f64,
    /// Unix µs when the new nodes were asked to start.
    pub start_us: u64,
    /// Seconds from then until each new node first answered.
    pub new_up_secs: Vec<Option<f64>>,
    /// Each node's connections at the start (new ones 0).
    pub at_start: Vec<u64>,
    /// Connected clients per node: the share every node should hold.
    pub mean: f64,
    pub tolerance: f64,
    pub ideal_moves: u64,
    /// Seconds from the start until every node held the mean within the
    /// band, and kept it to the end of the watch.
    pub balanced_secs: Option<f64>,
    pub target_secs: f64,
    /// Seconds watched after the start.
    pub watch_secs: f64,
    pub moves: Moves,
    /// `reconnect` frames after the start ÷ the ideal number.
    pub move_ratio: Option<f64>,
    pub max_move_ratio: f64,
    /// The nodes' own counters at the end of the watch.
    pub at_end: Vec<Option<NodeCounts>>,
    /// Where the clients were last welcomed: node id → clients.
    pub landed: BTreeMap<String, usize>,
    /// From each message's send to its first arrival.
    pub delivery: Summary,
    pub messages: SendStats,
    pub exactly_once: Tally<usize>,
    pub nothing_lost: bool,
    /// Balanced within `target_secs`, moves ≤ `max_move_ratio` × ideal,
    /// nothing lost or doubled.
    pub target_met: bool,
    /// Every node every second, from the first sample to the end.
    pub timeline: Vec<Sample>,
    pub connect_errors_by_kind: Vec<(String, u64)>,
}

fn secs(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.1} s"))
        .unwrap_or_else(|| "never".into())
}

pub fn print(r: &ScaleoutReport) {
    let clients = format!(
        "{} on {} first node(s) {:?}, then {} new {:?}; {} worker(s)",
        r.clients,
        r.first.len(),
        r.first,
        r.new.len(),
        r.new,
        r.up.workers
    );
    print_head("scaleout", &clients, &r.up, &[r.up.rss()]);
    let band = (r.mean * (1.0 - r.tolerance), r.mean * (1.0 + r.tolerance));
    println!(
        "at the start       {:?}; the share {:.0} (band {:.0}..{:.0}); ideal moves {}",
        r.at_start, r.mean, band.0, band.1, r.ideal_moves
    );
    let up: Vec<String> = r.new_up_secs.iter().map(|s| secs(*s)).collect();
    println!("new nodes up       after {}", up.join(", "));
    print_timeline(r);
    println!(
        "balanced           every node within ±{:.0}% of the share after {} (and after: watched {:.0} s); target ≤ {:.0} s: {}",
        r.tolerance * 100.0,
        secs(r.balanced_secs),
        r.watch_secs,
        r.target_secs,
        met(r.balanced_secs.is_some_and(|s| s <= r.target_secs))
    );
    let m = &r.moves;
    let nodes_moved: u64 = r.at_end.iter().flatten().map(|n| n.moved).sum();
    let rounds: u64 = r.at_end.iter().flatten().map(|n| n.rounds).sum();
    let refused: u64 = r.at_end.iter().flatten().map(|n| n.refused).sum();
    println!(
        "moves              {} reconnect frames ({} before the start) = {} × ideal {}; target ≤ {}×: {}",
        m.frames,
        m.frames_before,
        r.move_ratio.map_or("-".into(), |x| format!("{x:.3}")),
        r.ideal_moves,
        r.max_move_ratio,
        met(r.move_ratio.is_some_and(|x| x <= r.max_move_ratio))
    );
    println!(
        "  by the nodes     {nodes_moved} asked to move in {rounds} round(s); {refused} upgrades refused while moving"
    );
    println!(
        "clients            {} moved ({} more than once); {} connections ended after the start, {} not resumed; offline from the end to the resume p50 {} p99 {} max {}; {} failed connects",
        m.clients_moved,
        m.moved_again,
        m.ended,
        m.unresumed,
        ms(m.offline_ms[0], "-"),
        ms(m.offline_ms[1], "-"),
        ms(m.offline_ms[2], "-"),
        m.refused_attempts
    );
    print_landed(&r.landed);
    println!("delivery           {} (send to first arrival)", r.delivery);
    print_messages(&r.messages, &r.exactly_once, r.offered_rate);
    print_errors_by_kind(&r.connect_errors_by_kind);
    println!(
        "target             balanced within {:.0} s, moves ≤ {}× ideal, nothing lost or doubled: {}",
        r.target_secs,
        r.max_move_ratio,
        met(r.target_met)
    );
}

/// Every node's connections and the moves asked so far, every 10 s from
/// the start (and the last sample).
fn print_timeline(r: &ScaleoutReport) {
    let nodes = r.first.len() + r.new.len();
    let headers = std::iter::once("s after start".to_owned())
        .chain((0..nodes).map(|i| format!("node {i}")))
        .chain(["moved".to_owned()]);
    let mut t = Table::new(headers);
    let mut next = 0.0;
    let last = r.timeline.last().map(|s| s.at_us);
    for s in &r.timeline {
        let at = (s.at_us as f64 - r.start_us as f64) / 1e6;
        if at < next && Some(s.at_us) != last {
            continue;
        }
        next = (at / 10.0).floor() * 10.0 + 10.0;
        let cell = |n: &Option<NodeCounts>| n.map_or("-".into(), |n| n.connections.to_string());
        let row = std::iter::once(format!("{at:.0}"))
            .chain(s.nodes.iter().map(cell))
            .chain([s.total(|n| n.moved).to_string()]);
        t.row(row);
    }
    t.print();
}
