//! `conn --steps`: a walk up toward many connections (scripts/bench-million.sh).
//!
//! The connections are held across steps: each step asks the workers to
//! open the difference to its target (`add`; new worker processes of at
//! most `--per-worker` connections are started as the total needs them),
//! and with `--gateway-cmd` starts new gateway processes of at most
//! `--per-gateway` connections each. After each step: a settle, the
//! figures (gateway RSS, kernel slab, Redis `used_memory`, load-generator
//! RSS, each per held connection), then one broadcast to everyone, timed
//! until the last connection has it.
//!
//! The walk stops by itself: when `MemAvailable` is below `--mem-floor-mib`
//! before a step or while connecting (the workers are halted), when a
//! step's connects stall (no new TCP socket on the machine for
//! `--stall-secs`: the report says what the machine looked like), when the
//! next step or its broadcast would take it below the floor (projected
//! from the memory per connection measured so far), or at `--timeout`.
//! The report (a table, and JSON with `--out`, rewritten after every step)
//! says which.

mod gateway;
mod mem_watch;
pub mod plan;
pub mod redis;
mod report;
mod state;
mod step;
mod tcp_watch;

use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::future::join_all;
use herald_harness::machine::{meminfo, MemInfo};
use herald_harness::process::rss_kib;
use tokio::time::Instant;

use self::gateway::Gateway;
use self::mem_watch::MemWatch;
use self::redis::redis_memory;
use self::report::{print_header, print_row, StepReport, WalkReport};
use self::state::Walk;
use self::tcp_watch::TcpWatch;
use super::fleet::Fleet;
use super::pipe::WorkerCommand;
use super::ConnArgs;
use crate::client::http_client;
use crate::harness::report::write_json;

const DONE: &str = "done: every step";

pub async fn run(args: ConnArgs) -> anyhow::Result<()> {
    let sa = &args.steps;
    if sa.steps.windows(2).any(|w| w[1] <= w[0]) || sa.steps[0] == 0 {
        bail!("--steps must be increasing and above 0: {:?}", sa.steps);
    }
    if sa.gateway_cmd.is_none() && args.gateways.is_empty() {
        bail!("--steps needs --gateway or --gateway-cmd");
    }
    if args.pool.per_worker == 0 || sa.per_gateway == 0 {
        bail!("--per-worker and --per-gateway must be at least 1");
    }
    let client = &args.common.client;
    let client_mode = client.client_mode.resolve(client.codec)?.as_str();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.common.timeout_secs());
    let baseline = meminfo()?;
    let redis_baseline = match &sa.redis_url {
        Some(u) => Some(
            redis_memory(u)
                .await
                .context("Redis INFO before the walk")?,
        ),
        None => None,
    };
    let (watch, sampler) = MemWatch::start(deadline + Duration::from_secs(600))?;
    let (tcp, tcp_sampler) = TcpWatch::start(deadline + Duration::from_secs(600));
    let http = http_client(Duration::from_secs(60), None)?;

    // Gateways given on the command line: with --gateway-cmd they count as
    // the first ones (--per-gateway each); without it they share the
    // largest step evenly.
    let max_step = *sa.steps.last().expect("steps not empty");
    let fixed_capacity = match sa.gateway_cmd {
        Some(_) => sa.per_gateway,
        None => max_step.div_ceil(args.gateways.len()),
    };
    let gateways = (args.gateways.iter().enumerate())
        .map(|(i, url)| {
            let pid = args.gateway_pids.get(i).copied();
            Gateway {
                url: url.clone(),
                pid,
                child: None,
                rss_base_kib: pid.and_then(|p| rss_kib(p).ok()).unwrap_or(0),
                assigned: 0,
                capacity: fixed_capacity,
            }
        })
        .collect();

    let mut walk = Walk {
        args: &args,
        step_args: sa,
        run: crate::stamp::run_nonce(),
        http,
        gateways,
        workers: Vec::new(),
        fleet: Fleet::default(),
        watch,
        tcp,
        baseline,
        redis_baseline,
        started,
        deadline,
        floor_kib: sa.mem_floor_mib * 1024,
        bcast_per_conn_kib: 0.0,
    };
    let mut report = WalkReport {
        steps_requested: sa.steps.clone(),
        per_gateway: sa.per_gateway,
        per_worker: args.pool.per_worker,
        mem_floor_mib: sa.mem_floor_mib,
        timeout_secs: args.common.timeout_secs(),
        client_mode,
        baseline,
        redis_baseline,
        ..WalkReport::default()
    };
    println!(
        "== herald-loadtest conn --steps {:?}: floor {} MiB MemAvailable ({} MiB now), bound {} s ==",
        sa.steps,
        sa.mem_floor_mib,
        baseline.mem_available_kib / 1024,
        args.common.timeout_secs()
    );
    print_header();
    let result = walk_steps(&mut walk, &mut report).await;
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.max_held = report.steps.iter().map(|s| s.held).max().unwrap_or(0);
    match &result {
        Ok(reason) => report.stop_reason = reason.clone(),
        Err(e) => report.stop_reason = format!("error: {e:#}"),
    }
    report.completed = result.as_ref().is_ok_and(|r| r == DONE);

    // Workers first (their sockets close), then the gateways.
    let Walk {
        fleet, gateways, ..
    } = walk;
    fleet.close(&WorkerCommand::Close).await;
    join_all(gateways.into_iter().map(gateway::stop)).await;
    sampler.abort();
    tcp_sampler.abort();

    println!();
    print_header();
    for s in &report.steps {
        print_row(s);
    }
    println!(
        "stopped: {} (max held {}, {:.1} s)",
        report.stop_reason, report.max_held, report.elapsed_secs
    );
    write_json(args.common.out.as_deref(), &report)?;
    result.map(|_| ())
}

/// Runs the steps; `Ok(why it stopped)`.
async fn walk_steps(walk: &mut Walk<'_>, report: &mut WalkReport) -> anyhow::Result<String> {
    let step_args = walk.step_args;
    for (k, &target) in step_args.steps.iter().enumerate() {
        let step_started = Instant::now();
        if Instant::now() >= walk.deadline {
            return Ok(format!(
                "time bound ({} s) before step {}",
                walk.args.common.timeout_secs(),
                k + 1
            ));
        }
        let now = meminfo()?;
        let held: usize = walk.workers.iter().map(|w| w.held).sum();
        let need = target.saturating_sub(held);
        if now.mem_available_kib < walk.floor_kib {
            return Ok(format!(
                "memory floor before step {}: MemAvailable {} MiB < {} MiB",
                k + 1,
                now.mem_available_kib / 1024,
                walk.step_args.mem_floor_mib
            ));
        }
        if let Some(prev) = report.steps.last() {
            if let Some(why) = projection(walk, prev, now, need, target) {
                return Ok(format!("before step {} ({target}): {why}", k + 1));
            }
        }
        walk.watch.reset_min();
        let step = step::one_step(walk, k, target, need, step_started).await?;
        let halted = step.halted.clone();
        let no_broadcast = step.broadcast.is_none();
        print_row(&step);
        report.steps.push(step);
        write_json(walk.args.common.out.as_deref(), report)?;
        if let Some(why) = halted {
            return Ok(format!("step {} cut short: {why}", k + 1));
        }
        if no_broadcast {
            return Ok(format!(
                "step {}: its broadcast would take MemAvailable below {} MiB: skipped",
                k + 1,
                walk.step_args.mem_floor_mib
            ));
        }
    }
    Ok(DONE.into())
}

/// Why the next step should not be tried: its memory (connections and
/// broadcast, at the rates measured so far) or its time would cross the
/// bounds.
fn projection(
    walk: &Walk<'_>,
    prev: &StepReport,
    now: MemInfo,
    need: usize,
    target: usize,
) -> Option<String> {
    if prev.held == 0 {
        return None;
    }
    let per_conn = (walk.baseline.mem_available_kib).saturating_sub(prev.mem_available_idle_kib)
        as f64
        / prev.held as f64;
    let projected = now.mem_available_kib as f64
        - need as f64 * per_conn
        - target as f64 * walk.bcast_per_conn_kib;
    if projected < walk.floor_kib as f64 {
        return Some(format!(
            "MemAvailable would fall to about {:.0} MiB < {} MiB ({} MiB now; {:.2} KiB per connection held, {:.2} KiB more per connection during a broadcast)",
            projected / 1024.0,
            walk.step_args.mem_floor_mib,
            now.mem_available_kib / 1024,
            per_conn,
            walk.bcast_per_conn_kib
        ));
    }
    if prev.opened > 0 {
        let est = prev.step_secs * need as f64 / prev.opened as f64;
        let left = (walk.deadline.saturating_duration_since(Instant::now())).as_secs_f64();
        if est > left {
            return Some(format!(
                "it would take about {est:.0} s, {left:.0} s are left of the time bound"
            ));
        }
    }
    None
}
