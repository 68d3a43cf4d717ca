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

use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::future::join_all;
use futures_util::StreamExt;
use herald_harness::clock::unix_micros;
use herald_harness::latency::{fmt_us, LatencyHist, Summary};
use reqwest::Method;
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::{base_url, FanoutArgs};
use crate::client::api_call;
use crate::coordinator::{connect_all, plan, spawn_workers, worker_user, Connected, WorkerHandle};
use crate::cpu::{cpu_now, parse_cpu_pids};
use crate::loopback::check_all_loopback;
use crate::report::{opt_us, write_json};
use crate::worker::{WorkerCommand, WorkerEvent, ROUND_FIELD, RUN_FIELD, SENT_FIELD};

/// Most job-progress samples kept per round (one per poll that saw a change).
const MAX_PROGRESS_SAMPLES: usize = 2_000;

/// CPU one process used during a round.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    pub label: String,
    pub pid: u32,
    pub cpu_us: u64,
    /// `cpu_us` per message of the job (one per subscriber).
    pub us_per_message: f64,
}

/// One publish.
#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    pub round: u32,
    pub job: String,
    /// `subscribers` of the 202 answer.
    pub subscribers_accepted: u64,
    /// The job's `total` at its last poll.
    pub job_total: u64,
    /// The job's `done` at its last poll.
    pub job_done: u64,
    /// The job's `state` at its last poll.
    pub job_state: String,
    /// From sending the POST to its 202.
    pub accepted_us: u64,
    /// From sending the POST to the answer of the first poll that said
    /// `done` (or `failed`); `None` if neither came in time.
    pub job_done_us: Option<u64>,
    /// From sending the POST to the last live receiver's delivery.
    pub last_receiver_us: u64,
    /// The later of the two: the publish is complete.
    pub complete_us: Option<u64>,
    /// Messages appended per second (job total / time to done).
    pub messages_per_sec: Option<f64>,
    /// Connections open when the round was reported.
    pub receivers_live: usize,
    pub received: usize,
    /// Live receivers without the message.
    pub missing: usize,
    /// Deliveries beyond the first of this round to a connection.
    pub duplicates: u64,
    pub dropped_connections: usize,
    /// From sending the POST to each live receiver's delivery.
    pub delivery_latency: Summary,
    pub polls: u64,
    pub poll_errors: u64,
    /// (ms after the POST, the job's `done`) whenever a poll saw it change.
    pub progress: Vec<(u64, u64)>,
    /// Per `--cpu-pid` process, then the load generator (coordinator and
    /// workers together), from before the POST to the end of the round.
    pub cpu: Vec<ProcessCpu>,
    /// Sum over the `--cpu-pid` processes, per message.
    pub servers_cpu_us_per_message: Option<f64>,
    /// Every live receiver got the message once, the job is done and its
    /// total is the number of subscribers.
    pub correct: bool,
    /// Correct, and complete within `--target-secs`.
    pub target_met: bool,
    pub first_error: Option<String>,
}

/// The whole run, printed for people and written as JSON with `--out`.
#[derive(Debug, Serialize)]
pub struct FanoutReport {
    pub topic: String,
    pub gateways: Vec<String>,
    pub subscribers: u64,
    pub subscribed_ok: u64,
    pub subscribe_failed: u64,
    pub subscribe_retries: u64,
    pub subscribe_errors: Vec<String>,
    pub subscribe_secs: f64,
    pub subscribes_per_sec: f64,
    /// Per successful `PUT`.
    pub subscribe_latency: Summary,
    /// The topic's subscriber count before the first publish.
    pub topic_total: u64,
    pub receivers_requested: usize,
    pub receivers_ok: usize,
    pub receivers_failed: usize,
    pub connect_errors: Vec<String>,
    pub workers: usize,
    pub connect_secs: f64,
    pub loadgen_worker_rss_kib: Vec<u64>,
    pub target_secs: f64,
    pub rounds: Vec<RoundReport>,
    /// Duplicate deliveries over the whole run, counted `--grace` seconds
    /// after the last round.
    pub duplicates_total: u64,
    pub all_rounds_met: bool,
}

pub async fn run(args: FanoutArgs) -> anyhow::Result<()> {
    crate::bounded::within(Duration::from_secs(args.timeout), run_inner(args)).await
}

async fn run_inner(args: FanoutArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let bases: Vec<String> = args.gateways.iter().map(|g| base_url(g)).collect();
    check_all_loopback(&bases).await?;
    if args.receivers == 0 || args.receivers as u64 > args.subscribers {
        bail!("--receivers must be 1 to --subscribers");
    }
    let cpu_pids = parse_cpu_pids(&args.cpu_pids)?;
    let run = crate::stamp::run_nonce();
    let topic = format!("lt-fanout-{run}");

    let slices = plan(args.receivers, args.per_worker);
    let users = subscriber_names(&slices, args.subscribers as usize);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.subscribe_concurrency as usize)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
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
        &args.api_key,
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
    let mut workers = spawn_workers(
        &slices,
        &bases,
        args.source_ip_base,
        run,
        Duration::from_secs(args.timeout + 30),
        &args.client,
    )?;
    let result = drive(
        &args,
        &http,
        &bases,
        &topic,
        run,
        &cpu_pids,
        &mut workers,
        deadline,
    )
    .await;
    join_all(workers.into_iter().map(WorkerHandle::close)).await;
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
    print_report(&report);
    write_json(args.out.as_deref(), &report)
}

/// Every subscriber's name: the workers' users (the receivers, in the
/// workers' order), each followed by its share of the users that stay
/// offline, named `<receiver>-s<k>`. A topic's snapshot is in user-id byte
/// order, and `lt-0-17-s3` sorts right after `lt-0-17` and before
/// `lt-0-170`, so the receivers are spread evenly over the snapshot (as
/// online users among random ids would be) rather than all appended first.
fn subscriber_names(slices: &[(usize, usize)], subscribers: usize) -> Vec<String> {
    let receivers: usize = slices.iter().map(|s| s.1).sum();
    let others = subscribers.saturating_sub(receivers);
    let (base, extra) = (others / receivers.max(1), others % receivers.max(1));
    let mut names = Vec::with_capacity(subscribers.max(receivers));
    let mut j = 0;
    for (w, &(_, count)) in slices.iter().enumerate() {
        for i in 0..count {
            let receiver = worker_user(w, i);
            let offline = base + usize::from(j < extra);
            names.extend((0..offline).map(|k| format!("{receiver}-s{k}")));
            names.push(receiver);
            j += 1;
        }
    }
    names
}

/// The subscribe phase added up.
struct Subscribed {
    ok: u64,
    failed: u64,
    retries: u64,
    errors: Vec<String>,
    secs: f64,
    latency: LatencyHist,
}

/// Subscribes every user to `topic`, `--subscribe-concurrency` requests in
/// flight, request i on gateway i mod the number of gateways; a failed
/// request is tried again up to `--retries` times.
async fn subscribe_all(
    args: &FanoutArgs,
    http: &reqwest::Client,
    bases: &[String],
    topic: &str,
    users: &[String],
    deadline: Instant,
) -> Subscribed {
    let started = Instant::now();
    let retries = args.client.retries;
    let mut results = futures_util::stream::iter(users.iter().enumerate())
        .map(|(i, user)| async move {
            let base = &bases[i % bases.len()];
            let path = format!("/v1/users/{user}/topics/{topic}");
            let mut attempt = 0u32;
            loop {
                let sent = Instant::now();
                match api_call(http, Method::PUT, base, &path, &args.api_key, None).await {
                    Ok(_) => return (Ok(sent.elapsed()), attempt),
                    Err(e) if attempt >= retries || Instant::now() >= deadline => {
                        return (Err(e), attempt)
                    }
                    Err(_) => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    }
                }
            }
        })
        .buffer_unordered(args.subscribe_concurrency as usize);
    let mut out = Subscribed {
        ok: 0,
        failed: 0,
        retries: 0,
        errors: Vec::new(),
        secs: 0.0,
        latency: LatencyHist::new(),
    };
    let total = users.len() as u64;
    let mut next_log = Instant::now() + Duration::from_secs(2);
    while let Some((result, attempts)) = results.next().await {
        out.retries += u64::from(attempts);
        match result {
            Ok(took) => {
                out.ok += 1;
                out.latency.record(took.as_micros() as u64);
            }
            Err(e) => {
                out.failed += 1;
                let msg = format!("{e:#}");
                if out.errors.len() < 5 && !out.errors.contains(&msg) {
                    out.errors.push(msg);
                }
            }
        }
        let finished = out.ok + out.failed;
        if Instant::now() >= next_log || finished == total {
            next_log = Instant::now() + Duration::from_secs(2);
            tracing::info!(
                "subscribing: {finished} / {total} ({} failed), {:.0}/s",
                out.failed,
                finished as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    out.secs = started.elapsed().as_secs_f64();
    out
}

/// Connects the receivers, runs the rounds, then counts late duplicates.
#[allow(clippy::too_many_arguments)]
async fn drive(
    args: &FanoutArgs,
    http: &reqwest::Client,
    bases: &[String],
    topic: &str,
    run: u32,
    cpu_pids: &[(String, u32)],
    workers: &mut [WorkerHandle],
    deadline: Instant,
) -> anyhow::Result<(Connected, f64, Vec<RoundReport>, u64)> {
    let hello_deadline = Instant::now() + Duration::from_secs(30);
    for w in workers.iter_mut() {
        w.expect_hello(hello_deadline).await?;
    }
    let go_us = unix_micros();
    let connected = connect_all(workers, deadline).await?;
    let connect_secs = connected.last_connect_us.saturating_sub(go_us) as f64 / 1e6;
    tracing::info!(
        ok = connected.ok,
        failed = connected.failed,
        connect_secs,
        "receivers connected"
    );
    if connected.ok == 0 {
        bail!("no receiver connected: {:?}", connected.errors);
    }
    // Let the welcomes' counts frames and the nodes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut rounds = Vec::new();
    let mut duplicates_before = 0u64;
    for round in 0..args.rounds {
        if Instant::now() >= deadline {
            tracing::warn!("overall timeout reached after {round} rounds");
            break;
        }
        let r = publish_round(
            args,
            http,
            &bases[0],
            topic,
            run,
            round,
            cpu_pids,
            workers,
            connected.ok,
            duplicates_before,
        )
        .await?;
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
    let mut duplicates_total = 0;
    for w in workers.iter_mut() {
        w.send(&WorkerCommand::Collect { round: sentinel }).await?;
        if let WorkerEvent::Round { duplicates, .. } = w
            .round_report(sentinel, Instant::now() + Duration::from_secs(10))
            .await?
        {
            duplicates_total += duplicates;
        }
    }
    Ok((connected, connect_secs, rounds, duplicates_total))
}

/// One publish, until the job is done and every worker reported the round.
#[allow(clippy::too_many_arguments)]
async fn publish_round(
    args: &FanoutArgs,
    http: &reqwest::Client,
    base: &str,
    topic: &str,
    run: u32,
    round: u32,
    cpu_pids: &[(String, u32)],
    workers: &mut [WorkerHandle],
    receivers_ok: usize,
    duplicates_before: u64,
) -> anyhow::Result<RoundReport> {
    let loadgen_pids: Vec<u32> = std::iter::once(std::process::id())
        .chain(workers.iter().filter_map(|w| w.pid()))
        .collect();
    let server_pids: Vec<u32> = cpu_pids.iter().map(|&(_, p)| p).collect();
    let servers_before = cpu_now(&server_pids);
    let loadgen_before: u64 = cpu_now(&loadgen_pids).iter().sum();

    let sent_us = unix_micros();
    let t0 = Instant::now();
    let round_deadline = t0 + Duration::from_secs(args.round_timeout);
    let body = serde_json::json!({
        "body": format!("loadtest fan-out {run} {round}"),
        "data": {RUN_FIELD: run, ROUND_FIELD: round, SENT_FIELD: sent_us},
    });
    let published = api_call(
        http,
        Method::POST,
        base,
        &format!("/v1/topics/{topic}/messages"),
        &args.api_key,
        Some(&body),
    )
    .await
    .context("publishing")?;
    let accepted_us = t0.elapsed().as_micros() as u64;
    let job = published["job"]
        .as_str()
        .with_context(|| format!("no job id in {published}"))?
        .to_owned();
    let subscribers_accepted = published["subscribers"].as_u64().unwrap_or(0);

    // Poll the job until it ends.
    let mut ticker = tokio::time::interval(Duration::from_millis(args.poll_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut polls, mut poll_errors) = (0u64, 0u64);
    let (mut state, mut total, mut done) = (String::from("queued"), 0u64, 0u64);
    let mut job_done_us = None;
    let mut first_error = None;
    let mut progress = Vec::new();
    while Instant::now() < round_deadline {
        ticker.tick().await;
        polls += 1;
        let path = format!("/v1/jobs/{job}");
        match api_call(http, Method::GET, base, &path, &args.api_key, None).await {
            Ok(status) => {
                let at_ms = t0.elapsed().as_millis() as u64;
                state = status["state"].as_str().unwrap_or("?").to_owned();
                total = status["total"].as_u64().unwrap_or(0);
                let now_done = status["done"].as_u64().unwrap_or(0);
                if (progress.is_empty() || now_done != done)
                    && progress.len() < MAX_PROGRESS_SAMPLES
                {
                    progress.push((at_ms, now_done));
                }
                done = now_done;
                if state == "done" || state == "failed" {
                    job_done_us = Some(t0.elapsed().as_micros() as u64);
                    break;
                }
            }
            Err(e) => {
                poll_errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    // Every worker's report of the round: at once if every live receiver
    // has it, else after the grace (or the round's end).
    let wait_until = (Instant::now() + Duration::from_secs(args.grace)).min(round_deadline);
    let reports = join_all(
        workers
            .iter_mut()
            .map(|w| w.round_report(round, wait_until)),
    )
    .await;
    let servers_after = cpu_now(&server_pids);
    let loadgen_after: u64 = cpu_now(&loadgen_pids).iter().sum();

    let (mut received, mut live, mut last_recv, mut dropped, mut duplicates) =
        (0usize, 0usize, 0u64, 0usize, 0u64);
    let mut latency = LatencyHist::new();
    for r in reports {
        if let WorkerEvent::Round {
            received: got,
            expected,
            last_recv_us,
            latencies,
            dropped: d,
            duplicates: dups,
            ..
        } = r?
        {
            received += got;
            live += expected;
            dropped += d;
            duplicates += dups;
            last_recv = last_recv.max(last_recv_us);
            latency.merge_buckets(&latencies);
        }
    }
    let duplicates = duplicates.saturating_sub(duplicates_before);
    // Connections that dropped did not get it either.
    let missing = (live + dropped).max(receivers_ok).saturating_sub(received);
    let last_receiver_us = last_recv.saturating_sub(sent_us);
    let complete_us = job_done_us.map(|d| d.max(last_receiver_us));

    let per_message = |us: u64| us as f64 / total.max(1) as f64;
    let mut cpu: Vec<ProcessCpu> = cpu_pids
        .iter()
        .zip(servers_before.iter().zip(&servers_after))
        .map(|((label, pid), (before, after))| {
            let used = after.saturating_sub(*before);
            ProcessCpu {
                label: label.clone(),
                pid: *pid,
                cpu_us: used,
                us_per_message: per_message(used),
            }
        })
        .collect();
    let servers: u64 = cpu.iter().map(|c| c.cpu_us).sum();
    let loadgen = loadgen_after.saturating_sub(loadgen_before);
    cpu.push(ProcessCpu {
        label: "loadgen".into(),
        pid: std::process::id(),
        cpu_us: loadgen,
        us_per_message: per_message(loadgen),
    });

    let expected_total = subscribers_accepted;
    let correct = state == "done"
        && total == expected_total
        && missing == 0
        && duplicates == 0
        && dropped == 0;
    let target_met = correct && complete_us.is_some_and(|c| c as f64 <= args.target_secs * 1e6);
    Ok(RoundReport {
        round,
        job,
        subscribers_accepted,
        job_total: total,
        job_done: done,
        job_state: state,
        accepted_us,
        job_done_us,
        last_receiver_us,
        complete_us,
        messages_per_sec: job_done_us.map(|d| total as f64 / (d as f64 / 1e6).max(1e-9)),
        receivers_live: live,
        received,
        missing,
        duplicates,
        dropped_connections: dropped,
        delivery_latency: latency.summary(),
        polls,
        poll_errors,
        progress,
        servers_cpu_us_per_message: (!cpu_pids.is_empty()).then(|| per_message(servers)),
        cpu,
        correct,
        target_met,
        first_error,
    })
}

fn print_report(r: &FanoutReport) {
    println!("== herald-loadtest fanout ==");
    println!(
        "topic              {} on {} gateway(s); the publish and job polls go to {}",
        r.topic,
        r.gateways.len(),
        r.gateways.first().map(String::as_str).unwrap_or("-")
    );
    println!(
        "subscribe          {} ok / {} ({} failed, {} retried) in {:.1} s, {:.0}/s; topic count {}",
        r.subscribed_ok,
        r.subscribers,
        r.subscribe_failed,
        r.subscribe_retries,
        r.subscribe_secs,
        r.subscribes_per_sec,
        r.topic_total
    );
    println!("  per request      {}", r.subscribe_latency);
    for e in &r.subscribe_errors {
        println!("  subscribe error  {e}");
    }
    println!(
        "receivers          {} ok / {} ({} failed, {} workers) connected in {:.2} s; load-gen RSS {:?} KiB",
        r.receivers_ok,
        r.receivers_requested,
        r.receivers_failed,
        r.workers,
        r.connect_secs,
        r.loadgen_worker_rss_kib
    );
    for e in &r.connect_errors {
        println!("  connect error    {e}");
    }
    println!(
        "{:>5} | {:>9} | {:>9} | {:>9} | {:>9} | {:>8} | {:>13} | {:>4} | {:>15} | {:>6}",
        "round",
        "202",
        "job done",
        "last recv",
        "complete",
        "msgs/s",
        "received",
        "dup",
        "total / subs",
        "target"
    );
    for x in &r.rounds {
        println!(
            "{:>5} | {:>9} | {:>9} | {:>9} | {:>9} | {:>8} | {:>13} | {:>4} | {:>15} | {:>6}",
            x.round,
            fmt_us(x.accepted_us),
            opt_us(x.job_done_us),
            fmt_us(x.last_receiver_us),
            opt_us(x.complete_us),
            x.messages_per_sec
                .map(|m| format!("{m:.0}"))
                .unwrap_or_else(|| "-".into()),
            format!("{}/{}", x.received, x.received + x.missing),
            x.duplicates,
            format!("{}/{}", x.job_total, x.subscribers_accepted),
            if x.target_met {
                "MET"
            } else if x.correct {
                "slow"
            } else {
                "FAILED"
            }
        );
    }
    for x in &r.rounds {
        let parts: Vec<String> = x
            .cpu
            .iter()
            .map(|c| format!("{} {:.1}", c.label, c.us_per_message))
            .collect();
        let sum = x
            .servers_cpu_us_per_message
            .map(|s| format!(" (servers together {s:.1})"))
            .unwrap_or_default();
        println!(
            "  round {} CPU µs per message: {}{sum}; per delivery {}",
            x.round,
            parts.join(", "),
            x.delivery_latency
        );
        if x.job_state != "done" {
            println!(
                "  round {} job ended {} at {} of {}",
                x.round, x.job_state, x.job_done, x.job_total
            );
        }
        if let Some(e) = &x.first_error {
            println!("  round {} first error: {e}", x.round);
        }
    }
    println!(
        "exactly once       {} duplicate deliveries over the run (counted after the grace)",
        r.duplicates_total
    );
    println!(
        "target             complete within {:.1} s, every live receiver once, job total = subscribers: {}",
        r.target_secs,
        if r.all_rounds_met { "MET" } else { "NOT MET" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn receivers_are_spread_over_the_snapshot_order() {
        let slices = plan(1_000, 300);
        let mut names = subscriber_names(&slices, 10_003);
        assert_eq!(names.len(), 10_003);
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), 10_003);
        // The snapshot's order: bytes.
        names.sort();
        let receivers: std::collections::HashSet<String> = slices
            .iter()
            .enumerate()
            .flat_map(|(w, &(_, c))| (0..c).map(move |i| worker_user(w, i)))
            .collect();
        assert_eq!(receivers.len(), 1_000);
        let positions: Vec<usize> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| receivers.contains(*n))
            .map(|(p, _)| p)
            .collect();
        assert_eq!(positions.len(), 1_000);
        // Each receiver is followed by its 9 or 10 offline users.
        assert!(positions[0] <= 10, "{}", positions[0]);
        assert!(positions.windows(2).all(|w| w[1] - w[0] <= 11));
        assert!(*positions.last().unwrap() >= 10_003 - 11);
        // Only receivers: no offline users.
        assert_eq!(subscriber_names(&plan(5, 15_000), 5).len(), 5);
    }

    #[test]
    fn fanout_defaults() {
        let cli = Cli::try_parse_from([
            "herald-loadtest",
            "fanout",
            "--gateway",
            "http://127.0.0.1:1",
            "--gateway",
            "http://127.0.0.1:2",
            "--api-key",
            "k",
            "--secret",
            "s",
        ])
        .unwrap();
        let Command::Fanout(a) = cli.command else {
            panic!("not fanout")
        };
        assert_eq!(
            (a.subscribers, a.receivers, a.rounds, a.poll_ms),
            (100_000, 10_000, 1, 20)
        );
        assert_eq!(a.gateways.len(), 2);
    }
}
