//! The `soak` scenario: a steady mix for a long time, to see what only
//! time shows — memory that creeps up, latencies that drift.
//!
//! `--clients` resuming clients ([`herald_harness::Device`]) connect over the
//! gateways; then, for `--duration` seconds: private messages through the
//! API to random clients, a broadcast every `--broadcast-every` seconds,
//! `mark`s from random online clients, and churn (clients closing and
//! reconnecting). Every `--window` seconds a row: the gateways' RSS and
//! CPU, Redis ops/s, and p50/p99 of delivery (from the scheduled send
//! time), `mark` replies and churned reconnects. At the end, the drift
//! (last window against the first, and the RSS slope) and the same
//! exactly-once check as `storm` over every accepted private message.

mod args;
pub mod observer;
mod report;
pub mod traffic;
pub mod window;

use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use herald_harness::check::{check, Received};
use herald_harness::clock::unix_micros;
use herald_harness::process::{cpu_each, own_rss_kib, rss_each};
use herald_harness::redis_info::{self, RedisSampler};
use herald_harness::{Backoff, Device};
use tokio::sync::watch;
use tokio::time::Instant;

pub use args::SoakArgs;

use self::args::soak_user;
use self::observer::SoakObserver;
use self::report::SoakReport;
use self::traffic::Traffic;
use self::window::Window;
use crate::bounded::wait_until;
use crate::cli::base_url;
use crate::client::{start_sessions, Connector};
use crate::harness::report::write_json;
use crate::loopback::{check_all_loopback, check_loopback_addr};

/// The clients and what they share.
struct Clients {
    devices: Arc<Vec<Arc<Device>>>,
    observer: Arc<SoakObserver>,
    stop: watch::Sender<bool>,
}

/// The run, bounded by [`SoakArgs::limit`] (see `main.rs`).
pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let bases: Vec<String> = args.gateways.iter().map(|g| base_url(g)).collect();
    check_all_loopback(&bases).await?;
    if let Some(r) = &args.redis {
        check_loopback_addr(r).await?;
    }
    ensure!(args.duration > 0, "--duration must be positive");
    let run = crate::stamp::run_nonce();
    let rss_before = rss_each(&args.gateway_pids).iter().sum();
    let started = Instant::now();
    let clients = connect(&args, run, &bases).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "soak: {} clients connected in {connect_secs:.1} s",
        args.clients
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    clients.observer.take(); // the connect phase is not a window
    let rss_connected = rss_each(&args.gateway_pids).iter().sum();
    let sampler = args.redis.clone().map(|a| {
        let limit = Duration::from_secs(args.duration + 120);
        RedisSampler::start(a, Duration::from_millis(100), limit)
    });
    let traffic = Traffic::start(
        &args,
        run,
        clients.devices.clone(),
        clients.observer.clone(),
        &bases,
    )?;
    let windows = run_windows(&args, &clients, &traffic, sampler.as_ref()).await;
    let broadcasts_sent = traffic
        .broadcasts
        .load(std::sync::atomic::Ordering::Relaxed);
    let sender = traffic.stop().await;
    converge(&args, &clients, sender.accepted_count()).await;
    let _ = clients.stop.send(true);
    if let Some(s) = sampler {
        s.finish();
    }
    let received: Vec<Received<usize>> = clients
        .devices
        .iter()
        .map(|d| d.received(d.index))
        .collect();
    let report = SoakReport {
        gateways: bases,
        clients: args.clients,
        duration_secs: args.duration,
        window_secs: args.window,
        unicast_rate: args.unicast_rate,
        broadcast_every_secs: args.broadcast_every,
        mark_rate: args.mark_rate,
        churn_rate: args.churn_rate,
        connect_secs,
        rss_before_kib: rss_before,
        rss_connected_kib: rss_connected,
        loadgen_rss_kib: own_rss_kib(),
        drift: window::drift(&windows),
        windows,
        messages: sender.stats(),
        broadcasts_sent,
        exactly_once: check(&sender.accepted(), &received),
    };
    report::print(&report);
    write_json(args.common.out.as_deref(), &report)
}

/// Starts every client (client i on gateway i mod gateways, at most
/// `--concurrency` first connects in flight) and waits until all are up.
async fn connect(args: &SoakArgs, run: u32, bases: &[String]) -> anyhow::Result<Clients> {
    let n = args.clients as usize;
    let observer = Arc::new(SoakObserver::new(run, n));
    let (stop, stopped) = watch::channel(false);
    let connector = Connector::new(&args.common.client, None);
    let backoff = Backoff::new(args.backoff_base_ms, args.backoff_cap_ms);
    let ctx = connector.sessions(bases, backoff, stopped, observer.clone());
    let devices: Arc<Vec<Arc<Device>>> =
        Arc::new((0..n).map(|i| Device::new(i, soak_user(run, i))).collect());
    start_sessions(&devices, bases.len(), &ctx, args.common.client.concurrency).await;
    let online = || devices.iter().filter(|d| d.online()).count();
    wait_until(Duration::from_secs(120), Duration::from_millis(50), || {
        online() == n
    })
    .await;
    ensure!(
        online() == n,
        "{} of {n} clients connected within 120 s",
        online()
    );
    Ok(Clients {
        devices,
        observer,
        stop,
    })
}

/// One row per window until `--duration` is over.
async fn run_windows(
    args: &SoakArgs,
    clients: &Clients,
    traffic: &Traffic,
    sampler: Option<&RedisSampler>,
) -> Vec<Window> {
    let start = Instant::now();
    let count = args.duration.div_ceil(args.window) as usize;
    let mut windows = Vec::with_capacity(count);
    let (mut cpu_before, mut sent_before, mut bcast_before) = (cpu_each(&args.gateway_pids), 0, 0);
    let mut window_start_us = unix_micros();
    for i in 0..count {
        let end = Duration::from_secs((args.window * (i as u64 + 1)).min(args.duration));
        let span = end.saturating_sub(Duration::from_secs(args.window * i as u64));
        tokio::time::sleep_until(start + end).await;
        clients.observer.expire_marks(10_000_000);
        let mut w = Window::from_acc(i, end.as_secs_f64(), &clients.observer.take());
        w.rss_kib = rss_each(&args.gateway_pids);
        w.rss_total_kib = w.rss_kib.iter().sum();
        let cpu = cpu_each(&args.gateway_pids);
        w.cpu_cores = cpu
            .iter()
            .zip(&cpu_before)
            .map(|(a, b)| a.saturating_sub(*b) as f64 / span.as_micros().max(1) as f64)
            .collect();
        cpu_before = cpu;
        let now_us = unix_micros();
        w.redis_ops =
            sampler.and_then(|s| redis_info::mean(&s.snapshot(), window_start_us, now_us));
        window_start_us = now_us;
        w.online = clients.devices.iter().filter(|d| d.online()).count();
        let sent = traffic.sender.stats().dispatched;
        let bcast = traffic
            .broadcasts
            .load(std::sync::atomic::Ordering::Relaxed);
        (w.unicast_sent, w.broadcasts_sent) = (sent - sent_before, bcast - bcast_before);
        (sent_before, bcast_before) = (sent, bcast);
        eprintln!(
            "soak window {i} ({:.0}s): RSS {} KiB, unicast p50 {} p99 {}, mark p99 {}, {} sent {} received, {} online",
            w.end_secs,
            w.rss_total_kib,
            herald_harness::latency::fmt_us(w.unicast.p50_us),
            herald_harness::latency::fmt_us(w.unicast.p99_us),
            herald_harness::latency::fmt_us(w.mark.p99_us),
            w.unicast_sent,
            w.unicast_received,
            w.online
        );
        windows.push(w);
    }
    windows
}

/// Waits (at most `--grace`) until the clients hold every accepted message.
async fn converge(args: &SoakArgs, clients: &Clients, accepted: u64) {
    let total = &clients.observer.unicast_total;
    let all = || total.load(std::sync::atomic::Ordering::Relaxed) >= accepted;
    wait_until(
        Duration::from_secs(args.grace),
        Duration::from_millis(50),
        all,
    )
    .await;
}
