//! One step of the walk: room for its connections (gateways and workers
//! started as needed), the connect phase (halted at the memory floor or
//! the time bound), the idle figures, and its broadcast.

use std::time::Duration;

use anyhow::bail;
use herald_harness::clock::unix_micros;
use herald_harness::latency::fmt_us;
use herald_harness::machine::meminfo;
use herald_harness::process::{cpu_each, rss_each};
use tokio::time::Instant;

use super::gateway::{self, Gateway};
use super::plan::{fill, pair};
use super::redis::redis_memory;
use super::report::{BroadcastReport, StepReport};
use super::state::{Walk, Worker};
use crate::scenario::conn::fleet::{self, add_connections, hello, worker_template};
use crate::scenario::conn::pipe::AddTarget;

/// Starts gateways and workers until there is room for `need` more.
async fn make_room(walk: &mut Walk<'_>, need: usize) -> anyhow::Result<()> {
    let args = walk.args;
    while walk.gateways.iter().map(Gateway::free).sum::<usize>() < need {
        let Some(cmd) = &walk.step_args.gateway_cmd else {
            bail!("the gateways have no room for {need} more connections");
        };
        let (index, capacity) = (walk.gateways.len(), walk.step_args.per_gateway);
        let g = gateway::start(cmd, index, capacity, &walk.http).await?;
        walk.gateways.push(g);
    }
    let free = |w: &Worker| args.pool.per_worker.saturating_sub(w.assigned);
    let first_new = walk.workers.len();
    while walk.workers.iter().map(free).sum::<usize>() < need {
        let urls = walk.gateways.iter().map(|g| g.url.clone()).collect();
        let template = worker_template(args, urls, walk.run, args.common.timeout_secs() + 300);
        walk.fleet.spawn("worker", &template, &[(0, 0)], &[])?;
        walk.workers.push(Worker {
            rss_base_kib: 0,
            assigned: 0,
            held: 0,
        });
    }
    let new: Vec<usize> = (first_new..walk.workers.len()).collect();
    hello(&mut walk.fleet, &new).await?;
    // Before it connects anything (its reactor threads already run).
    let rss = walk.fleet.rss_kib();
    for w in new {
        walk.workers[w].rss_base_kib = rss[w];
    }
    Ok(())
}

pub async fn one_step(
    walk: &mut Walk<'_>,
    k: usize,
    target: usize,
    need: usize,
    step_started: Instant,
) -> anyhow::Result<StepReport> {
    let args = walk.args;
    let mem_before = walk.watch.latest();
    make_room(walk, need).await?;

    // Who opens what: the gateways and workers with room, filled in order.
    let gw_free: Vec<usize> = walk.gateways.iter().map(Gateway::free).collect();
    let wk_free: Vec<usize> = (walk.workers.iter())
        .map(|w| args.pool.per_worker.saturating_sub(w.assigned))
        .collect();
    let plan = pair(&fill(&gw_free, need), &fill(&wk_free, need));
    let mut adds = Vec::new();
    for (w, targets) in &plan {
        let mut list = Vec::new();
        for &(g, n) in targets {
            walk.gateways[g].assigned += n;
            walk.workers[*w].assigned += n;
            let gateway = walk.gateways[g].url.clone();
            list.push(AddTarget { gateway, count: n });
        }
        adds.push((*w, list));
    }
    tracing::info!(
        step = k + 1,
        target,
        need,
        gateways = walk.gateways.len(),
        workers = walk.workers.len(),
        "connecting"
    );

    // Connect, halting at the floor or the time bound.
    let go_us = unix_micros();
    let client = &args.common.client;
    let grace = Duration::from_secs(client.connect_timeout * (u64::from(client.retries) + 1) + 60);
    let (floor, deadline, watch) = (walk.floor_kib, walk.deadline, walk.watch.clone());
    let (tcp, stall_after) = (
        walk.tcp.clone(),
        Duration::from_secs(walk.step_args.stall_secs),
    );
    tcp.restart();
    let halt_if = || {
        let avail = watch.latest();
        if avail < floor {
            Some(format!(
                "MemAvailable {} MiB < floor {} MiB",
                avail / 1024,
                floor / 1024
            ))
        } else if Instant::now() >= deadline {
            Some("time bound".into())
        } else {
            tcp.stalled(stall_after)
        }
    };
    let check_every = Duration::from_millis(250);
    let (connected, halted) = add_connections(
        &mut walk.fleet,
        adds,
        deadline + grace,
        check_every,
        halt_if,
    )
    .await?;
    // The events are in the order the adds were sent.
    for ((w, _), &h) in plan.iter().zip(&connected.held_per_worker) {
        walk.workers[*w].held = h;
    }
    let connect_secs = connected.last_connect_us.saturating_sub(go_us) as f64 / 1e6;
    tracing::info!(
        step = k + 1,
        ok = connected.ok,
        failed = connected.failed,
        skipped = connected.skipped,
        connect_secs,
        "step connected"
    );

    // Settle, then the idle figures.
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let mut held: usize = walk.workers.iter().map(|w| w.held).sum();
    let idle = meminfo()?;
    let redis = match &walk.step_args.redis_url {
        Some(u) => match redis_memory(u).await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("Redis INFO: {e:#}");
                None
            }
        },
        None => None,
    };
    let gw_pids: Vec<u32> = walk.gateways.iter().filter_map(|g| g.pid).collect();
    let gateway_rss: u64 = rss_each(&gw_pids).iter().sum();
    let gateway_base: u64 = (walk.gateways.iter())
        .filter(|g| g.pid.is_some())
        .map(|g| g.rss_base_kib)
        .sum();
    let loadgen_rss: u64 = walk.fleet.rss_kib().iter().sum();
    let loadgen_base: u64 = walk.workers.iter().map(|w| w.rss_base_kib).sum();

    // The broadcast, unless it would take the machine below the floor.
    let projected = idle.mem_available_kib as f64 - held as f64 * walk.bcast_per_conn_kib;
    let broadcast = if held == 0 || projected < walk.floor_kib as f64 {
        tracing::warn!(held, projected_mib = projected / 1024.0, "no broadcast");
        None
    } else {
        let b = broadcast(walk, k as u32, &gw_pids).await?;
        held = b.expected;
        walk.bcast_per_conn_kib = (idle.mem_available_kib).saturating_sub(b.mem_available_min_kib)
            as f64
            / held.max(1) as f64;
        Some(b)
    };

    let per = |v: f64| if held > 0 { v / held as f64 } else { 0.0 };
    let growth = |now: u64, base: u64| per(now as f64 - base as f64);
    let base = walk.baseline;
    Ok(StepReport {
        step: k + 1,
        target,
        held,
        opened: connected.ok,
        failed: connected.failed,
        skipped: connected.skipped,
        retries: connected.retries,
        connect_errors: connected.errors,
        gateways: walk.gateways.len(),
        workers: walk.workers.len(),
        connect_secs,
        connects_per_sec: if connect_secs > 0.0 {
            connected.ok as f64 / connect_secs
        } else {
            0.0
        },
        connect_latency: connected.latency.summary(),
        gateway_rss_kib: gateway_rss,
        gateway_rss_base_kib: gateway_base,
        gateway_rss_per_conn_kib: growth(gateway_rss, gateway_base),
        slab_kib: idle.slab_kib,
        sunreclaim_kib: idle.sunreclaim_kib,
        slab_per_conn_kib: growth(idle.slab_kib, base.slab_kib),
        sunreclaim_per_conn_kib: growth(idle.sunreclaim_kib, base.sunreclaim_kib),
        redis_used_memory_kib: redis.map(|r| r.used_memory / 1024),
        redis_used_memory_rss_kib: redis.map(|r| r.used_memory_rss / 1024),
        redis_used_per_conn_kib: match (redis, walk.redis_baseline) {
            (Some(now), Some(base)) => Some(growth(now.used_memory, base.used_memory) / 1024.0),
            _ => None,
        },
        loadgen_rss_kib: loadgen_rss,
        loadgen_rss_per_conn_kib: growth(loadgen_rss, loadgen_base),
        mem_available_before_kib: mem_before,
        mem_available_idle_kib: idle.mem_available_kib,
        mem_available_min_kib: walk.watch.min(),
        mem_used_per_conn_kib: growth(base.mem_available_kib, idle.mem_available_kib),
        broadcast,
        step_secs: step_started.elapsed().as_secs_f64(),
        elapsed_secs: walk.started.elapsed().as_secs_f64(),
        halted,
    })
}

/// One broadcast to everyone (round `round`), until every held connection
/// has it or `--round-timeout`.
async fn broadcast(
    walk: &mut Walk<'_>,
    round: u32,
    gw_pids: &[u32],
) -> anyhow::Result<BroadcastReport> {
    let args = walk.args;
    let targets = args.post_to.targets(walk.gateways.iter().map(|g| &g.url));
    let cpu_before: u64 = cpu_each(gw_pids).iter().sum();
    walk.watch.reset_min();
    let text = format!("loadtest step {}", round + 1);
    let api_key = &args.common.api_key;
    let sent_us = fleet::broadcast(&walk.http, &targets, api_key, text, walk.run, round).await?;
    let until = Instant::now() + Duration::from_secs(args.round_timeout);
    // Workers that hold nothing would only answer at the deadline.
    let holding: Vec<usize> = (0..walk.workers.len())
        .filter(|&w| walk.workers[w].held > 0)
        .collect();
    let t = fleet::round(&mut walk.fleet, &holding, round, until).await?;
    let cpu_used = cpu_each(gw_pids)
        .iter()
        .sum::<u64>()
        .saturating_sub(cpu_before);
    let all_us = t.last_recv_us.saturating_sub(sent_us);
    tracing::info!(round, received = t.received, expected = t.expected, all_received = %fmt_us(all_us), "broadcast done");
    Ok(BroadcastReport {
        received: t.received,
        expected: t.expected,
        dropped: t.dropped,
        duplicates: t.duplicates,
        complete: t.received == t.expected,
        all_received_us: all_us,
        delivery_latency: t.latency.summary(),
        gateway_cpu_us_per_delivery: cpu_used as f64 / t.received.max(1) as f64,
        mem_available_min_kib: walk.watch.min(),
    })
}
