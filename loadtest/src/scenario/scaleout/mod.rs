//! The `scaleout` scenario: nodes added under load get their share.
//!
//! `--clients` users each hold one resuming client
//! ([`herald_harness::Device`], `storm`'s workers and observer) on the
//! `--first` nodes (client i on first node i mod their number), spread over
//! worker processes bound to 127.0.0.2, .3, … Messages go at a steady rate
//! through the first nodes' API to random clients, each stamped with its
//! send time and its 202's id and seq booked. After `--baseline` seconds
//! this run creates `--start-file`, and the script starts the `--new`
//! nodes. The nodes rebalance (`rebalance.enabled`): one above the mean
//! asks its excess to move with the drain's `reconnect` frame; the client
//! waits the frame's delay and reconnects as through a Kubernetes Service,
//! to a node picked at random among *all* of them — a moving node refuses
//! it (503) and a node not started yet refuses the connection, and either
//! is another pick after the backoff — then `sync`s from the highest seq
//! it has.
//!
//! Measured: every node's connections each second (its `/metrics`); the
//! time from the start until every node holds the share (connected clients
//! ÷ nodes) within ±`--tolerance` for good; moves — the `reconnect` frames
//! the clients received, against the ideal number (Σ max(0, count − mean)
//! at the start) and the nodes' `herald_rebalance_moved_total`; and, after
//! a tail of traffic and a grace, whether every accepted message reached
//! its user exactly once ([`herald_harness::check()`]), and the delivery
//! latency from the send to the first arrival.
//!
//! Why 34,000 clients by default where the target is 60,000: one process
//! may hold at most 20,000 open files on the bench machine, so a node
//! cannot hold 30,000.

mod args;
pub mod nodes;
pub mod report;

use std::cell::Cell;
use std::time::Duration;

use anyhow::{bail, ensure};
use herald_harness::clock::unix_micros;
use tokio::time::Instant;

pub use args::ScaleoutArgs;

use self::nodes::{ideal_moves, settled_after, Sample, Watch};
use self::report::{moves, ScaleoutReport};
use crate::cli::base_url;
use crate::loopback::check_all_loopback;
use crate::scenario::storm::fleet::{Fleet, Plan};
use crate::scenario::storm::fleet_args::MAX_PER_PROCESS;
use crate::scenario::storm::fleet_run::{self, collect, connect, tail};
use crate::scenario::storm::outcome::landed;
use crate::scenario::storm::pipe::Progress;
use crate::scenario::storm::traffic::{line, start_traffic, Live, Steady};

/// How often every node is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The run, bounded by `--timeout` (see `main.rs`).
pub async fn run(mut args: ScaleoutArgs) -> anyhow::Result<()> {
    args.first = args.first.iter().map(|v| base_url(v)).collect();
    args.new = args.new.iter().map(|v| base_url(v)).collect();
    validate(&args).await?;
    let plan = Plan {
        nodes: args.nodes(),
        homes: args.first.len(),
        service: true,
        args: &args.fleet,
    };
    let scenario = async |run, fleet: &mut Fleet| scaleout(&args, run, fleet).await;
    fleet_run::run(&plan, scenario, report::print).await
}

async fn validate(args: &ScaleoutArgs) -> anyhow::Result<()> {
    args.fleet.check()?;
    ensure!(
        args.tolerance > 0.0 && args.tolerance <= 1.0 && args.max_move_ratio > 0.0,
        "--tolerance in (0, 1], --max-move-ratio positive"
    );
    ensure!(args.nodes().len() <= 64, "at most 64 nodes");
    let per_first = args.fleet.clients.div_ceil(args.first.len());
    if per_first > MAX_PER_PROCESS {
        bail!(
            "{per_first} clients per first node: one process may hold at most 20,000 open \
             files here; add --first nodes or fewer --clients"
        );
    }
    ensure!(
        !args.start_file.exists(),
        "--start-file {} exists already: the new nodes would start at once",
        args.start_file.display()
    );
    check_all_loopback(&args.nodes()).await
}

async fn scaleout(
    args: &ScaleoutArgs,
    run: u32,
    fleet: &mut Fleet,
) -> anyhow::Result<ScaleoutReport> {
    let f = &args.fleet;
    let up = connect("scaleout", f, fleet).await?;
    let nodes = args.nodes();
    let watch = Watch::start(nodes.clone(), SAMPLE_EVERY, f.common.limit())?;
    let longest = Duration::from_secs(f.baseline + args.watch_timeout + f.tail + 60);
    let mut live = start_traffic(&Steady::new(f, args.first.clone(), longest), run)?;
    let clients = f.clients;
    let show = |phase: &str, at: Option<(&str, u64)>, live: &Live, p: &Progress| {
        format!(
            "{} | nodes {}",
            line(phase, live, at, p, clients),
            counts(watch.last())
        )
    };
    let baseline = |p: &_| show("scaleout baseline", None, &live, p);
    fleet.pump_for(f.baseline, baseline).await?;

    // The scale-out: the counts now, then the new nodes asked for.
    let http = crate::client::http_client(Duration::from_secs(2), None)?;
    let at_start = nodes::sample(&http, &nodes).await;
    let frames_before = fleet.total().moved;
    let start_us = unix_micros();
    std::fs::write(&args.start_file, "start\n")?;
    eprintln!(
        "scaleout: asked for the new nodes ({})",
        args.start_file.display()
    );
    let at_start: Vec<u64> = at_start
        .nodes
        .iter()
        .map(|n| n.map_or(0, |n| n.connections))
        .collect();
    let mean = up.connected_ok as f64 / nodes.len() as f64;

    // Watch until every node is in the band and no client was asked to
    // move for `--quiet` seconds.
    let started = Instant::now();
    let quiet = Duration::from_secs(args.quiet);
    let last_move = Cell::new((frames_before, Instant::now()));
    let settled = |f: &Fleet| {
        let moved = f.total().moved;
        if moved != last_move.get().0 {
            last_move.set((moved, Instant::now()));
        }
        let since_start = started.elapsed().as_secs_f64();
        let balanced = settled_after(&watch.samples(), start_us, mean, args.tolerance);
        last_move.get().1.elapsed() >= quiet
            && balanced.is_some_and(|s| since_start - s >= quiet.as_secs_f64())
    };
    let watching = |p: &Progress| show("scaleout watch", Some(("start", start_us)), &live, p);
    let watch_end = started + Duration::from_secs(args.watch_timeout);
    if !fleet.pump(watch_end, watching, settled).await? {
        eprintln!("scaleout: not settled after {} s", args.watch_timeout);
    }
    let watch_secs = started.elapsed().as_secs_f64();
    let at_end = watch.last().unwrap_or_default().nodes;

    let after = |live: &_, p: &_| show("scaleout tail", Some(("start", start_us)), live, p);
    tail("scaleout", f, fleet, &mut live, after).await?;
    let outcomes = collect(fleet).await?;
    let timeline = watch.finish();
    let exactly_once = live.exactly_once(&outcomes);
    let mut moves = moves(&outcomes, start_us);
    moves.frames -= frames_before.min(moves.frames);
    moves.frames_before = frames_before;
    let ideal = ideal_moves(&at_start);
    let move_ratio = (ideal > 0).then(|| moves.frames as f64 / ideal as f64);
    let balanced_secs = settled_after(&timeline, start_us, mean, args.tolerance);
    let nothing_lost = exactly_once.exactly_once && moves.unresumed == 0 && up.connect_failed == 0;
    let target_met = nothing_lost
        && balanced_secs.is_some_and(|s| s <= f.target_secs)
        && move_ratio.is_some_and(|x| x <= args.max_move_ratio);
    Ok(ScaleoutReport {
        clients,
        first: args.first.clone(),
        new: args.new.clone(),
        up,
        offered_rate: f.rate,
        start_us,
        new_up_secs: up_after(&timeline, start_us, args.first.len()),
        at_start,
        mean,
        tolerance: args.tolerance,
        ideal_moves: ideal,
        balanced_secs,
        target_secs: f.target_secs,
        watch_secs,
        moves,
        move_ratio,
        max_move_ratio: args.max_move_ratio,
        at_end,
        landed: landed(&outcomes),
        delivery: fleet.latency().summary(),
        messages: live.sender.stats(),
        exactly_once,
        nothing_lost,
        target_met,
        timeline,
        connect_errors_by_kind: fleet.errors(),
    })
}

/// Each node's connections in the latest sample (`-`: no answer).
fn counts(sample: Option<Sample>) -> String {
    let Some(s) = sample else {
        return "-".into();
    };
    let each: Vec<String> = (s.nodes.iter())
        .map(|n| n.map_or("-".into(), |n| n.connections.to_string()))
        .collect();
    format!("{} moved {}", each.join(" "), s.total(|n| n.moved))
}

/// Seconds from `start_us` until each node from `from` on first answered.
fn up_after(timeline: &[Sample], start_us: u64, from: usize) -> Vec<Option<f64>> {
    let nodes = timeline.first().map_or(0, |s| s.nodes.len());
    (from..nodes)
        .map(|i| {
            let up = timeline
                .iter()
                .find(|s| s.at_us >= start_us && s.nodes[i].is_some());
            up.map(|s| (s.at_us - start_us) as f64 / 1e6)
        })
        .collect()
}
