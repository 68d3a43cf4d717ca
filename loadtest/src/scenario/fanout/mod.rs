//! The `fanout` scenario: one publish to a topic with many subscribers.
//!
//! 1. Subscribes `--subscribers` users to a fresh topic through the server
//!    API (`PUT /v1/users/{id}/topics/{topic}`, bounded concurrency, spread
//!    over the gateways), and checks the topic's count.
//! 2. Connects `--receivers` of them over WebSocket, in worker processes
//!    (the same workers as `conn`: users `lt-<worker>-<i>`, connection i on
//!    gateway i mod the number of gateways). The others are named so that
//!    the receivers are spread evenly over the snapshot's order (see
//!    [`subscriber_names`]).
//! 3. Per round: `POST /v1/topics/{topic}/messages` on the first gateway,
//!    stamped with the run, the round and the send time in `data` (what
//!    the workers record); then polls `GET /v1/jobs/{id}` every
//!    `--poll-ms` until the job is done, and waits for every worker's
//!    report of the round. Reported: time to the 202, to the first poll
//!    that saw the job done, and to the last live receiver's delivery;
//!    whether every live receiver got the message exactly once and the
//!    job's total equals the subscribers; the CPU of the `--cpu-pid`
//!    processes (and of the load generator) per message appended.

mod args;
mod report;
mod round;
pub mod subscribe;

use std::time::Duration;

use anyhow::{bail, Context};
use herald_harness::latency::fmt_us;
use reqwest::Method;
use tokio::time::Instant;

pub use args::FanoutArgs;

use self::report::{FanoutReport, RoundReport};
use self::round::Publisher;
use self::subscribe::{subscribe_all, subscriber_names};
use crate::cli::base_url;
use crate::client::{api_call, http_client};
use crate::harness::report::{opt_us, write_json};
use crate::harness::worker::{plan, WorkerArgs};
use crate::loopback::check_all_loopback;
use crate::scenario::conn::fleet::{self, connect_timed, hello, Connected, Fleet};
use crate::scenario::conn::pipe::WorkerCommand;

/// The run, bounded by `--timeout` (see `main.rs`).
pub async fn run(args: FanoutArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.common.timeout_secs());
    let bases: Vec<String> = args.gateways.iter().map(|g| base_url(g)).collect();
    check_all_loopback(&bases).await?;
    if args.receivers == 0 || args.receivers as u64 > args.subscribers {
        bail!("--receivers must be 1 to --subscribers");
    }
    let run = crate::stamp::run_nonce();
    let topic = format!("lt-fanout-{run}");

    let slices = plan(args.receivers, args.pool.per_worker);
    let users = subscriber_names(&slices, args.subscribers as usize);
    let pool = Some(args.subscribe_concurrency as usize);
    let http = http_client(Duration::from_secs(30), pool)?;
    let subscribed = subscribe_all(&args, &http, &bases, &topic, &users, deadline).await;
    drop(users);
    if subscribed.ok == 0 {
        bail!("no subscribe succeeded: {:?}", subscribed.errors);
    }
    let count = api_call(
        &http,
        Method::GET,
        &bases[0],
        &format!("/v1/topics/{topic}/subscribers?limit=1"),
        &args.common.api_key,
        None,
    )
    .await
    .context("reading the topic's subscriber count")?;
    let topic_total = count["total"].as_u64().unwrap_or(0);
    tracing::info!(topic, topic_total, "subscribed");

    tracing::info!(
        receivers = args.receivers,
        workers = slices.len(),
        gateways = bases.len(),
        "starting workers"
    );
    let timeout = args.common.timeout_secs() + 30;
    let ip = args.pool.source_ip_base;
    let template = WorkerArgs::template(bases.clone(), run, ip, timeout, &args.common.client);
    let publisher = Publisher {
        args: &args,
        http: &http,
        base: &bases[0],
        topic: &topic,
        run,
        cpu_pids: &args.cpu.cpu_pids,
        receivers_ok: 0,
    };
    let mut fleet = Fleet::default();
    let result = match fleet.spawn("worker", &template, &slices, &[]) {
        Ok(()) => drive(publisher, &mut fleet, deadline).await,
        Err(e) => Err(e),
    };
    fleet.close(&WorkerCommand::Close).await;
    let (connected, connect_secs, rounds, duplicates_total) = result?;

    let report = FanoutReport {
        topic,
        gateways: bases,
        subscribers: args.subscribers,
        subscribed_ok: subscribed.ok,
        subscribe_failed: subscribed.failed,
        subscribe_retries: subscribed.retries,
        subscribe_errors: subscribed.errors,
        subscribe_secs: subscribed.secs,
        subscribes_per_sec: subscribed.ok as f64 / subscribed.secs.max(1e-9),
        subscribe_latency: subscribed.latency.summary(),
        topic_total,
        receivers_requested: args.receivers,
        receivers_ok: connected.ok,
        receivers_failed: connected.failed,
        connect_errors: connected.errors,
        workers: connected.worker_rss_kib.len(),
        connect_secs,
        loadgen_worker_rss_kib: connected.worker_rss_kib,
        target_secs: args.target_secs,
        all_rounds_met: duplicates_total == 0
            && !rounds.is_empty()
            && rounds.iter().all(|r| r.target_met),
        rounds,
        duplicates_total,
    };
    report::print(&report);
    write_json(args.common.out.as_deref(), &report)
}

/// Connects the receivers, runs the rounds, then counts late duplicates.
async fn drive(
    mut publisher: Publisher<'_>,
    fleet: &mut Fleet,
    deadline: Instant,
) -> anyhow::Result<(Connected, f64, Vec<RoundReport>, u64)> {
    let args = publisher.args;
    let all: Vec<usize> = (0..fleet.len()).collect();
    hello(fleet, &all).await?;
    let (connected, connect_secs) = connect_timed(fleet, deadline).await?;
    if connected.ok == 0 {
        bail!("no receiver connected: {:?}", connected.errors);
    }
    publisher.receivers_ok = connected.ok;
    // Let the welcomes' counts frames and the nodes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut rounds = Vec::new();
    let mut duplicates_before = 0u64;
    for round in 0..args.rounds {
        if Instant::now() >= deadline {
            tracing::warn!("overall timeout reached after {round} rounds");
            break;
        }
        let r = publisher.round(fleet, round, duplicates_before).await?;
        duplicates_before += r.duplicates;
        tracing::info!(
            round,
            accepted = %fmt_us(r.accepted_us),
            job_done = %opt_us(r.job_done_us),
            last_receiver = %fmt_us(r.last_receiver_us),
            received = r.received,
            "round done"
        );
        rounds.push(r);
        if round + 1 < args.rounds {
            tokio::time::sleep(Duration::from_millis(args.round_interval_ms)).await;
        }
    }

    // Late duplicates: ask each worker for a round that was never sent; its
    // report carries the duplicates counted so far.
    tokio::time::sleep(Duration::from_secs(args.grace)).await;
    let sentinel = args.rounds;
    fleet
        .tell_all(&WorkerCommand::Collect { round: sentinel })
        .await?;
    let until = Instant::now() + Duration::from_secs(10);
    let late = fleet::round(fleet, &all, sentinel, until).await?;
    Ok((connected, connect_secs, rounds, late.duplicates))
}
