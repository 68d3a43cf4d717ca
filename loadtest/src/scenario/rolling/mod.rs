//! The `rolling` scenario: a rolling deploy under load, each node in turn
//! replaced while its clients move to the others.
//!
//! `--clients` users each hold one resuming client ([`herald_harness::Device`],
//! `storm`'s workers and observer) on the `--old` nodes (client i on old
//! node i mod their number), spread over worker processes bound to
//! 127.0.0.2, .3, … Messages go at a steady rate through the API of the
//! nodes up to random clients, each stamped with its send time and its
//! 202's id and seq booked. Then, old node by old node, as a Kubernetes
//! rollout with `maxSurge 1`, `maxUnavailable 0` does: this run creates
//! `start-<i>` in `--start-dir` and the script starts the replacement; once
//! it answers `/readyz`, it takes API traffic and the old node gets SIGTERM
//! (it leaves the API traffic, as a terminating pod leaves the Service's
//! endpoints). The old node drains — a `reconnect` frame with a jittered
//! delay to each client, spread over `drain.window_secs` — and exits. Each
//! client waits the frame's delay and reconnects as through the Service, to
//! a node picked at random among *all* addresses, old and new (one gone,
//! draining or not started yet refuses: another pick after the backoff),
//! then `sync`s from the highest seq it has. The next step starts once the
//! old process is gone and every client it held is back.
//!
//! Measured: per step, the time from the SIGTERM until its clients
//! resumed (50/99/100%; the target: all within `--target-secs`) and how
//! many moved; for the whole roll, whether every accepted message reached
//! its user exactly once ([`herald_harness::check()`]), the delivery
//! latency of the messages sent during the roll, Redis ops/s (`INFO stats`),
//! and the roll's duration.
//!
//! Why 36,000 clients by default where the target is 100,000: a client
//! lands on a node up at random, so each old node not rolled yet takes its
//! share of every drain before its own ([`report::fullest`]: the last of 4
//! holds 48.8% of all clients before its turn), and one process may hold
//! at most 20,000 open files on the bench machine.

mod args;
pub mod report;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure};
use herald_harness::clock::unix_micros;
use herald_harness::redis_info;
use tokio::time::Instant;

pub use args::RollingArgs;

use self::report::{back_per_step, fullest, RollingReport, Step};
use crate::cli::base_url;
use crate::loopback::{check_all_loopback, check_loopback_addr};
use crate::scenario::scaleout::nodes;
use crate::scenario::storm::fleet::{Fleet, Plan};
use crate::scenario::storm::fleet_args::MAX_PER_PROCESS;
use crate::scenario::storm::fleet_report::RedisLoad;
use crate::scenario::storm::fleet_run::{self, collect, connect, tail};
use crate::scenario::storm::outcome::landed;
use crate::scenario::storm::pipe::Progress;
use crate::scenario::storm::span::{check_victims, gone, signal_all};
use crate::scenario::storm::traffic::{line, start_traffic, Live, Steady};

/// The run, bounded by `--timeout` (see `main.rs`).
pub async fn run(mut args: RollingArgs) -> anyhow::Result<()> {
    args.old = args.old.iter().map(|v| base_url(v)).collect();
    args.new = args.new.iter().map(|v| base_url(v)).collect();
    validate(&args).await?;
    let plan = Plan {
        nodes: args.nodes(),
        homes: args.old.len(),
        service: !args.sdk_list,
        args: &args.fleet,
    };
    let scenario = async |run, fleet: &mut Fleet| rolling(&args, run, fleet).await;
    fleet_run::run(&plan, scenario, report::print).await
}

async fn validate(args: &RollingArgs) -> anyhow::Result<()> {
    let n = args.old.len();
    ensure!(
        args.old_pids.len() == n && args.new.len() == n,
        "one --old-pid and one --new per --old"
    );
    args.fleet.check()?;
    ensure!(2 * n <= 64, "at most 32 old nodes");
    let most = fullest(args.fleet.clients, n);
    if most > MAX_PER_PROCESS as f64 {
        bail!(
            "{most:.0} clients on the fullest node during the roll: one process may hold at \
             most 20,000 open files here; fewer --clients or more nodes"
        );
    }
    for i in 0..n {
        let file = start_file(args, i);
        ensure!(!file.exists(), "{} exists already", file.display());
    }
    check_all_loopback(&args.nodes()).await?;
    if let Some(r) = &args.redis.redis {
        check_loopback_addr(r).await?;
    }
    check_victims(&args.old_pids)
}

fn start_file(args: &RollingArgs, i: usize) -> std::path::PathBuf {
    args.start_dir.join(format!("start-{i}"))
}

async fn rolling(args: &RollingArgs, run: u32, fleet: &mut Fleet) -> anyhow::Result<RollingReport> {
    let f = &args.fleet;
    let fleet_up = connect("rolling", f, fleet).await?;
    let n = args.old.len();
    // The nodes taking API traffic: the old ones at first.
    let up = Arc::new(AtomicU64::new((1u64 << n) - 1));
    let steady = Steady {
        up: Some(up.clone()),
        redis: args.redis.sampled(),
        ..Steady::new(f, args.nodes(), f.common.limit())
    };
    let mut live = start_traffic(&steady, run)?;
    live.timed.store(false, Ordering::Relaxed);
    let clients = f.clients;
    let baseline = |p: &_| line("rolling baseline", &live, None, p, clients);
    fleet.pump_for(f.baseline, baseline).await?;

    let http = crate::client::http_client(Duration::from_secs(2), Some(4))?;
    let mut steps = Vec::new();
    for i in 0..n {
        let step = roll_one(args, i, fleet, &live, &up, &http).await?;
        let done = step.gone_us.is_some();
        steps.push(step);
        ensure!(
            done || i + 1 == n,
            "step {i}: gave up after {} s",
            args.step_timeout
        );
    }
    live.timed.store(false, Ordering::Relaxed);
    let end_us = steps.last().map_or(0, |s| s.end_us);
    let after = |live: &_, p: &_| line("rolling tail", live, Some(("end", end_us)), p, clients);
    tail("rolling", f, fleet, &mut live, after).await?;
    let outcomes = collect(fleet).await?;

    let sigterms: Vec<u64> = steps.iter().map(|s| s.sigterm_us).collect();
    let back = back_per_step(&outcomes, &sigterms);
    let first_sigterm = sigterms.first().copied().unwrap_or(end_us);
    let samples = live.sampler.take().map(|s| s.finish());
    let redis = samples.map(|s| RedisLoad {
        sample_ms: args.redis.redis_sample_ms,
        samples: s.len(),
        baseline_ops: redis_info::mean(&s, live.started_us + 1_000_000, first_sigterm),
        peak_ops_100ms: redis_info::peak(&s, first_sigterm, end_us, Duration::from_millis(100)),
        peak_ops_1s: redis_info::peak(&s, first_sigterm, end_us, Duration::from_secs(1)),
        storm_mean_ops: redis_info::mean(&s, first_sigterm, end_us),
        commands_per_resume: None,
    });
    let exactly_once = live.exactly_once(&outcomes);
    let target_ms = f.target_secs * 1e3;
    let back_in_time = back
        .iter()
        .all(|b| b.unresumed == 0 && b.after.p100_ms.is_none_or(|ms| ms <= target_ms));
    let all_gone = steps.iter().all(|s| s.gone_us.is_some());
    let nothing_lost = exactly_once.exactly_once && fleet_up.connect_failed == 0;
    Ok(RollingReport {
        clients,
        up: fleet_up,
        backoff_base_ms: f.backoff_base_ms,
        backoff_cap_ms: f.backoff_cap_ms,
        sdk_list: args.sdk_list,
        service_readiness_ms: args.fleet.service_readiness_ms,
        offered_rate: f.rate,
        fullest_expected: fullest(clients, n),
        roll_secs: end_us.saturating_sub(steps[0].asked_us) as f64 / 1e6,
        sigterm_to_end_secs: end_us.saturating_sub(first_sigterm) as f64 / 1e6,
        steps,
        back,
        target_secs: f.target_secs,
        landed: landed(&outcomes),
        delivery: fleet.latency().summary(),
        messages: live.sender.stats(),
        target_met: back_in_time && all_gone && nothing_lost,
        exactly_once,
        redis,
        back_in_time,
        connect_errors_by_kind: fleet.errors(),
    })
}

/// Step `i`: the replacement asked for and ready, then SIGTERM to old node
/// `i`, until it is gone and every client it held is back (or
/// `--step-timeout`).
async fn roll_one(
    args: &RollingArgs,
    i: usize,
    fleet: &mut Fleet,
    live: &Live,
    up: &AtomicU64,
    http: &reqwest::Client,
) -> anyhow::Result<Step> {
    let n = args.old.len();
    let limit = Instant::now() + Duration::from_secs(args.step_timeout);
    let asked_us = unix_micros();
    std::fs::write(start_file(args, i), "start\n")?;
    eprintln!("rolling: step {i}: asked for {}", args.new[i]);
    let ready = Arc::new(AtomicBool::new(false));
    let poll = tokio::spawn(wait_ready(http.clone(), args.new[i].clone(), ready.clone()));
    let clients = args.fleet.clients;
    let waiting = |p: &Progress| line("rolling surge", live, Some(("asked", asked_us)), p, clients);
    let is_ready = fleet
        .pump(limit, waiting, |_| ready.load(Ordering::Relaxed))
        .await?;
    poll.abort();
    let ready_us = is_ready.then(unix_micros);
    ensure!(
        is_ready,
        "step {i}: {} not ready within the step's timeout",
        args.new[i]
    );
    up.fetch_or(1 << (n + i), Ordering::Relaxed);

    let before = nodes::sample(http, std::slice::from_ref(&args.old[i])).await;
    let connections = before.nodes[0].map(|c| c.connections);
    let lost_before = fleet.total().lost;
    up.fetch_and(!(1 << i), Ordering::Relaxed);
    let pid = args.old_pids[i];
    let sigterm_us = signal_all(&[pid], libc::SIGTERM)?;
    live.timed.store(true, Ordering::Relaxed);
    eprintln!(
        "rolling: step {i}: SIGTERM {pid} ({} holding {connections:?})",
        args.old[i]
    );
    let gone_us = std::cell::Cell::new(None);
    let all_back = |f: &Fleet| {
        if gone_us.get().is_none() && gone(pid) {
            gone_us.set(Some(unix_micros()));
        }
        let t = f.total();
        let moved = t.lost - lost_before;
        gone_us.get().is_some() && t.lost == t.resumed && connections.is_none_or(|c| moved >= c)
    };
    let rolling = |p: &Progress| line("rolling", live, Some(("sigterm", sigterm_us)), p, clients);
    if !fleet.pump(limit, rolling, all_back).await? {
        eprintln!("rolling: step {i}: gave up after {} s", args.step_timeout);
    }
    Ok(Step {
        old: args.old[i].clone(),
        old_pid: pid,
        new: args.new[i].clone(),
        asked_us,
        ready_us,
        sigterm_us,
        connections,
        gone_us: gone_us.get(),
        end_us: unix_micros(),
    })
}

/// Polls `base`'s `/readyz` until it answers 200 (then sets `ready`).
async fn wait_ready(http: reqwest::Client, base: String, ready: Arc<AtomicBool>) {
    let url = format!("{base}/readyz");
    // Bounded by the step's timeout, which aborts this task.
    loop {
        if let Ok(r) = http.get(&url).send().await {
            if r.status().is_success() {
                ready.store(true, Ordering::Relaxed);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
