//! The `conn` scenario: N idle authenticated connections, then R broadcasts.
//!
//! Measures (1) gateway RSS per connection: VmRSS of the gateway processes
//! before any connection and after all are up and idle, divided by N;
//! (2) the connect rate over the connect phase; (3) broadcast fan-out: for
//! each round, per-delivery latency (send time carried in `data`) and the time
//! until the last of the N connections had it.
//!
//! The connections are held by worker processes ([`worker`], the lean
//! client by default). With `--steps` it walks up instead, holding the
//! connections across steps and stopping at a memory or time bound
//! ([`walk`]).

mod args;
pub mod fleet;
pub mod pipe;
mod report;
pub mod walk;
pub mod worker;

use std::time::Duration;

use anyhow::bail;
use herald_harness::latency::{fmt_us, LatencyHist};
use herald_harness::process::{cpu_split_total, rss_total, total_cpu_micros};
use tokio::time::Instant;

pub use args::{ConnArgs, StepArgs};

use self::fleet::{broadcast, connect_timed, hello, worker_template, Connected, Fleet};
use self::pipe::WorkerCommand;
use self::report::ConnReport;
use crate::client::http_client;
use crate::harness::report::write_json;
use crate::harness::worker::plan;

pub async fn run(args: ConnArgs) -> anyhow::Result<()> {
    if !args.steps.steps.is_empty() {
        return walk::run(args).await;
    }
    if args.gateways.is_empty() {
        bail!("--gateway is needed (--gateway-cmd is for --steps)");
    }
    let deadline = Instant::now() + Duration::from_secs(args.common.timeout_secs());
    if args.connections == 0 {
        bail!("-n must be at least 1");
    }
    let client = &args.common.client;
    client.client_mode.resolve(client.codec)?;
    let rss_before = rss_total(&args.gateway_pids)?;
    let slices = plan(args.connections, args.pool.per_worker);
    tracing::info!(
        connections = args.connections,
        workers = slices.len(),
        gateways = args.gateways.len(),
        "starting workers"
    );
    let run = crate::stamp::run_nonce();
    let timeout = args.common.timeout_secs() + 30;
    let template = worker_template(&args, args.gateways.clone(), run, timeout);
    let mut fleet = Fleet::default();
    let result = match fleet.spawn("worker", &template, &slices, &[]) {
        Ok(()) => drive(&args, run, &mut fleet, rss_before, deadline).await,
        Err(e) => Err(e),
    };
    fleet.close(&WorkerCommand::Close).await;
    let report = result?;
    report::print(&report);
    write_json(args.common.out.as_deref(), &report)
}

async fn drive(
    args: &ConnArgs,
    run: u32,
    fleet: &mut Fleet,
    rss_before: u64,
    deadline: Instant,
) -> anyhow::Result<ConnReport> {
    let all: Vec<usize> = (0..fleet.len()).collect();
    hello(fleet, &all).await?;
    let worker_rss_before = fleet.rss_kib();
    let cpu_before_connect = total_cpu_micros(&args.gateway_pids)?;
    let (connected, connect_secs) = connect_timed(fleet, deadline).await?;
    let connect_cpu = total_cpu_micros(&args.gateway_pids)? - cpu_before_connect;
    let Connected {
        ok,
        failed,
        retries,
        worker_rss_kib: worker_rss,
        errors,
        latency: connect_latency,
        ..
    } = connected;
    if ok == 0 {
        bail!("no connection succeeded: {errors:?}");
    }

    // Idle: let the gateway finish any lazy work before reading its RSS.
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let rss_idle = rss_total(&args.gateway_pids)?;
    let worker_rss_idle = fleet.rss_kib();
    let worker_growth: u64 = (worker_rss_idle.iter().zip(&worker_rss_before))
        .map(|(idle, before)| idle.saturating_sub(*before))
        .sum();

    // Broadcast rounds.
    let http = http_client(Duration::from_secs(30), None)?;
    let targets = args.post_to.targets(&args.gateways);
    let cpu_before_rounds = cpu_split_total(&args.gateway_pids);
    let mut latency = LatencyHist::new();
    let mut all_received = LatencyHist::new();
    let mut per_round = Vec::new();
    let (mut expected_total, mut received_total, mut dropped) = (0u64, 0u64, 0usize);
    for round in 0..args.rounds {
        if Instant::now() >= deadline {
            tracing::warn!("overall timeout reached after {round} rounds");
            break;
        }
        let text = format!("loadtest broadcast {round}");
        let sent_us = broadcast(&http, &targets, &args.common.api_key, text, run, round).await?;
        let round_deadline =
            (Instant::now() + Duration::from_secs(args.round_timeout)).min(deadline);
        let t = fleet::round(fleet, &all, round, round_deadline).await?;
        dropped = t.dropped;
        latency.merge_buckets(&t.latency.to_buckets());
        // `want` counts every connection that was welcomed, dropped or not.
        let (got, want) = (t.received, (t.expected + t.dropped).max(ok));
        expected_total += want as u64;
        received_total += got as u64;
        let all_us = t.last_recv_us.saturating_sub(sent_us);
        if got == want {
            all_received.record(all_us);
        }
        per_round.push(all_us);
        tracing::info!(round, received = got, expected = want, all_received = %fmt_us(all_us), "round done");
        if round + 1 < args.rounds {
            tokio::time::sleep(Duration::from_millis(args.round_interval_ms)).await;
        }
    }
    let rounds_after = cpu_split_total(&args.gateway_pids);
    let rounds_user = rounds_after.0.saturating_sub(cpu_before_rounds.0);
    let rounds_system = rounds_after.1.saturating_sub(cpu_before_rounds.1);
    let per_delivery = |us: u64| us as f64 / received_total.max(1) as f64;
    let rss_after = rss_total(&args.gateway_pids)?;
    let client = &args.common.client;

    Ok(ConnReport {
        connections_requested: args.connections,
        connections_ok: ok,
        connections_failed: failed,
        connect_retries: retries,
        connect_errors: errors,
        workers: fleet.len(),
        connect_secs,
        connect_latency: connect_latency.summary(),
        gateway_cpu_us_per_connect: connect_cpu as f64 / ok as f64,
        connects_per_sec: if connect_secs > 0.0 {
            ok as f64 / connect_secs
        } else {
            0.0
        },
        gateway_rss_before_kib: rss_before,
        gateway_rss_idle_kib: rss_idle,
        gateway_rss_after_broadcasts_kib: rss_after,
        rss_per_conn_kib: rss_idle.saturating_sub(rss_before) as f64 / ok as f64,
        loadgen_worker_rss_kib: worker_rss,
        client_mode: client.client_mode.resolve(client.codec)?.as_str(),
        loadgen_worker_rss_before_kib: worker_rss_before,
        loadgen_worker_rss_idle_kib: worker_rss_idle,
        loadgen_rss_per_conn_kib: worker_growth as f64 / ok as f64,
        rounds: args.rounds,
        deliveries_expected: expected_total,
        deliveries_received: received_total,
        dropped_connections: dropped,
        gateway_cpu_us_per_delivery: per_delivery(rounds_user + rounds_system),
        gateway_user_us_per_delivery: per_delivery(rounds_user),
        gateway_system_us_per_delivery: per_delivery(rounds_system),
        delivery_latency: latency.summary(),
        all_received: all_received.summary(),
        per_round_all_received_us: per_round,
    })
}
