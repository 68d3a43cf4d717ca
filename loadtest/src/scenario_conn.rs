//! The `conn` scenario: N idle authenticated connections, then R broadcasts.
//!
//! Measures (1) gateway RSS per connection: VmRSS of the gateway processes
//! before any connection and after all are up and idle, divided by N;
//! (2) the connect rate over the connect phase; (3) broadcast fan-out: for
//! each round, per-delivery latency (send time carried in `data`) and the time
//! until the last of the N connections had it.
//!
//! With `--steps` it walks up instead, holding the connections across
//! steps and stopping at a memory or time bound ([`steps`]).

mod steps;
pub use steps::StepArgs;

use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::future::join_all;
use herald_harness::clock::unix_micros;
use herald_harness::latency::{fmt_us, LatencyHist, Summary};
use herald_harness::process::{rss_kib, total_cpu_micros};
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::{ConnArgs, PostTo};
use crate::client::post_message;
use crate::coordinator::{
    connect_all, plan, spawn_workers_from, workers_rss, Connected, WorkerHandle,
};
use crate::worker::{WorkerEvent, ROUND_FIELD, RUN_FIELD, SENT_FIELD};

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

fn total_rss(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&p| rss_kib(p)).sum()
}

pub async fn run(args: ConnArgs) -> anyhow::Result<()> {
    if !args.steps.steps.is_empty() {
        return steps::run(args).await;
    }
    if args.gateways.is_empty() {
        bail!("--gateway is needed (--gateway-cmd is for --steps)");
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    if args.connections == 0 {
        bail!("-n must be at least 1");
    }
    args.client.client_mode.resolve(args.client.codec)?;
    let rss_before = total_rss(&args.gateway_pids)?;
    let slices = plan(args.connections, args.per_worker);
    tracing::info!(
        connections = args.connections,
        workers = slices.len(),
        gateways = args.gateways.len(),
        "starting workers"
    );

    let run = crate::stamp::run_nonce();
    let mut workers = spawn_workers_from(
        args.worker_id_base,
        &slices,
        &args.gateways,
        args.source_ip_base,
        run,
        Duration::from_secs(args.timeout + 30),
        &args.client,
    )?;
    let result = drive(&args, run, &mut workers, rss_before, deadline).await;
    join_all(workers.into_iter().map(WorkerHandle::close)).await;
    let report = result?;
    print_report(&report);
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn drive(
    args: &ConnArgs,
    run: u32,
    workers: &mut [WorkerHandle],
    rss_before: u64,
    deadline: Instant,
) -> anyhow::Result<ConnReport> {
    let hello_deadline = Instant::now() + Duration::from_secs(30);
    for w in workers.iter_mut() {
        w.expect_hello(hello_deadline).await?;
    }

    let worker_rss_before = workers_rss(workers);
    // Connect phase: all workers start at one moment.
    let cpu_before_connect = total_cpu_micros(&args.gateway_pids)?;
    let go_us = unix_micros();
    let Connected {
        ok,
        failed,
        retries,
        last_connect_us,
        worker_rss_kib: worker_rss,
        errors,
        latency: connect_latency,
        ..
    } = connect_all(workers, deadline).await?;
    let last_us = last_connect_us.max(go_us);
    let connect_secs = (last_us.saturating_sub(go_us)) as f64 / 1e6;
    let connect_cpu = total_cpu_micros(&args.gateway_pids)? - cpu_before_connect;
    tracing::info!(ok, failed, retries, connect_secs, "connect phase done");
    if ok == 0 {
        bail!("no connection succeeded: {errors:?}");
    }

    // Idle: let the gateway finish any lazy work before reading its RSS.
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let rss_idle = total_rss(&args.gateway_pids)?;
    let worker_rss_idle = workers_rss(workers);
    let worker_growth: u64 = (worker_rss_idle.iter().zip(&worker_rss_before))
        .map(|(idle, before)| idle.saturating_sub(*before))
        .sum();

    // Broadcast rounds.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let targets: Vec<&String> = match args.post_to {
        PostTo::First => args.gateways.iter().take(1).collect(),
        PostTo::All => args.gateways.iter().collect(),
    };
    let cpu_before_rounds = crate::cpu::cpu_split_total(&args.gateway_pids);
    let mut latency = LatencyHist::new();
    let mut all_received = LatencyHist::new();
    let mut per_round = Vec::new();
    let (mut expected_total, mut received_total, mut dropped) = (0u64, 0u64, 0usize);
    for round in 0..args.rounds {
        if Instant::now() >= deadline {
            tracing::warn!("overall timeout reached after {round} rounds");
            break;
        }
        let sent_us = unix_micros();
        let body = serde_json::json!({
            "to": {"all": true},
            "category": "announcement",
            "body": format!("loadtest broadcast {round}"),
            "data": {RUN_FIELD: run, ROUND_FIELD: round, SENT_FIELD: sent_us},
        });
        // Posted to every target at once, so no node starts late.
        for r in join_all(
            targets
                .iter()
                .map(|t| post_message(&http, t, &args.api_key, &body)),
        )
        .await
        {
            r?;
        }
        let round_deadline =
            (Instant::now() + Duration::from_secs(args.round_timeout)).min(deadline);
        let reports = join_all(
            workers
                .iter_mut()
                .map(|w| w.round_report(round, round_deadline)),
        )
        .await;
        let (mut got, mut want, mut last_recv) = (0usize, 0usize, 0u64);
        dropped = 0;
        for r in reports {
            if let WorkerEvent::Round {
                received,
                expected,
                last_recv_us,
                latencies,
                dropped: d,
                ..
            } = r?
            {
                got += received;
                want += expected + d;
                dropped += d;
                last_recv = last_recv.max(last_recv_us);
                latency.merge_buckets(&latencies);
            }
        }
        // `want` counts every connection that was welcomed, dropped or not.
        let want = want.max(ok);
        expected_total += want as u64;
        received_total += got as u64;
        let all_us = last_recv.saturating_sub(sent_us);
        if got == want {
            all_received.record(all_us);
        }
        per_round.push(all_us);
        tracing::info!(round, received = got, expected = want, all_received = %fmt_us(all_us), "round done");
        if round + 1 < args.rounds {
            tokio::time::sleep(Duration::from_millis(args.round_interval_ms)).await;
        }
    }
    let rounds_after = crate::cpu::cpu_split_total(&args.gateway_pids);
    let rounds_user = rounds_after.0.saturating_sub(cpu_before_rounds.0);
    let rounds_system = rounds_after.1.saturating_sub(cpu_before_rounds.1);
    let per_delivery = |us: u64| us as f64 / received_total.max(1) as f64;
    let rss_after = total_rss(&args.gateway_pids)?;

    Ok(ConnReport {
        connections_requested: args.connections,
        connections_ok: ok,
        connections_failed: failed,
        connect_retries: retries,
        connect_errors: errors,
        workers: workers.len(),
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
        client_mode: args.client.client_mode.resolve(args.client.codec)?.as_str(),
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

fn print_report(r: &ConnReport) {
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
