//! The `storm` scenario: the clients of a dying node come back.
//!
//! `--clients` users each hold one resuming client ([`herald_harness::Device`]),
//! all connected to the victim nodes (client i to victim i mod victims),
//! spread over worker processes bound to 127.0.0.2, .3, … Messages go at a
//! steady rate through the survivors' API to random storm users, the 202's
//! id and seq booked. After `--baseline` seconds every victim is killed
//! with SIGKILL at once. The clients notice the close, wait a jittered
//! backoff, connect to another node (a dead victim refuses; they try
//! another) and `sync` from the highest seq they have. Measured: the time
//! from the kill until 50/99/100% are welcomed and resumed; Redis ops/s
//! (INFO stats every ~50 ms); the survivors' CPU; and, after a tail of
//! traffic and a grace, whether every accepted message reached its user
//! exactly once ([`herald_harness::check()`]) and whether the survivors'
//! presence counts the clients as they count themselves (`presence.rs`).
//!
//! Why several victims: one process may hold at most 20,000 open files on
//! the bench machine, so one gateway cannot hold 20,000 clients; a storm
//! of 20,000 is several nodes of ≤ 19,000 killed together, which the
//! report says.
//!
//! Its fleet — the workers (`worker.rs`, `fleet.rs`), their traffic
//! (`traffic.rs`), the run's frame (`fleet_run.rs`), its command line
//! (`fleet_args.rs`) and its report's shared parts (`fleet_report.rs`) —
//! is also `scaleout`'s and `rolling`'s.

mod args;
pub(crate) mod fleet;
pub mod fleet_args;
pub mod fleet_report;
pub mod fleet_run;
pub mod outcome;
pub mod pipe;
pub mod presence;
pub mod report;
pub mod span;
pub mod traffic;
pub mod worker;

use std::time::Duration;

use anyhow::{bail, ensure};

pub use args::{StormArgs, StormWorkerArgs};

use self::fleet::{Fleet, Plan};
use self::fleet_args::MAX_PER_PROCESS;
use self::fleet_run::{collect, connect, tail};
use self::report::StormReport;
use self::span::{kill_and_wait, machine_cores, redis_load};
use self::traffic::{line, start_traffic, Steady};
use crate::cli::base_url;
use crate::loopback::{check_all_loopback, check_loopback_addr};

/// How long the survivors' presence may take to be right after the tail:
/// a dead node's entries go once its heartbeat lapsed and a survivor
/// reaped it (`node.heartbeat_ms`, 5 s by default, then the reap).
const PRESENCE_TIMEOUT: Duration = Duration::from_secs(90);

/// The run, bounded by `--timeout` (see `main.rs`).
pub async fn run(mut args: StormArgs) -> anyhow::Result<()> {
    args.victims = args.victims.iter().map(|v| base_url(v)).collect();
    args.survivors = args.survivors.iter().map(|v| base_url(v)).collect();
    validate(&args).await?;
    let nodes = args.victims.iter().chain(&args.survivors);
    let plan = Plan {
        nodes: nodes.cloned().collect(),
        homes: args.victims.len(),
        service: false,
        args: &args.fleet,
    };
    let scenario = async |run, fleet: &mut Fleet| storm(&args, run, fleet).await;
    fleet_run::run(&plan, scenario, report::print).await
}

async fn validate(args: &StormArgs) -> anyhow::Result<()> {
    ensure!(
        args.victims.len() == args.victim_pids.len(),
        "one --victim-pid per --victim"
    );
    args.fleet.check()?;
    ensure!(
        args.victims.len() + args.survivors.len() <= 64,
        "at most 64 nodes"
    );
    let per_victim = args.fleet.clients.div_ceil(args.victims.len());
    let per_survivor = args.fleet.clients.div_ceil(args.survivors.len());
    if per_victim > MAX_PER_PROCESS || per_survivor > MAX_PER_PROCESS * 9 / 10 {
        bail!(
            "{per_victim} clients per victim / {per_survivor} per survivor: one process may hold \
             at most 20,000 open files here; add victims or survivors"
        );
    }
    check_all_loopback(&args.victims).await?;
    check_all_loopback(&args.survivors).await?;
    if let Some(r) = &args.redis.redis {
        check_loopback_addr(r).await?;
    }
    span::check_victims(&args.victim_pids)
}

async fn storm(args: &StormArgs, run: u32, fleet: &mut Fleet) -> anyhow::Result<StormReport> {
    let f = &args.fleet;
    let up = connect("storm", f, fleet).await?;
    let longest = Duration::from_secs(f.baseline + args.storm_timeout + f.tail + 60);
    let steady = Steady {
        redis: args.redis.sampled(),
        ..Steady::new(f, args.survivors.clone(), longest)
    };
    let mut live = start_traffic(&steady, run)?;
    let clients = f.clients;
    let baseline = |p: &_| line("storm baseline", &live, None, p, clients);
    fleet.pump_for(f.baseline, baseline).await?;
    let span = kill_and_wait(args, fleet, &live).await?;
    let kill = Some(("kill", span.kill_us));
    let storm_tail = |live: &_, p: &_| line("storm tail", live, kill, p, clients);
    tail("storm", f, fleet, &mut live, storm_tail).await?;
    let presence = presence::check(
        &args.survivors[0],
        &f.common.api_key,
        run,
        clients,
        fleet.total().online,
        PRESENCE_TIMEOUT,
    )
    .await?;
    let outcomes = collect(fleet).await?;
    let samples = live.sampler.take().map(|s| s.finish());
    let redis = samples.map(|s| redis_load(args, &s, &live, &span, &outcomes));
    let resume = outcome::summarize(&outcomes, span.kill_us);
    let exactly_once = live.exactly_once(&outcomes);
    let target_met = resume.never_resumed == 0
        && up.connect_failed == 0
        && exactly_once.exactly_once
        && presence.correct()
        && resume
            .resumed_after
            .p100_ms
            .is_some_and(|ms| ms <= f.target_secs * 1e3);
    Ok(StormReport {
        clients,
        victims: args.victims.clone(),
        victim_pids: args.victim_pids.clone(),
        survivors: args.survivors.clone(),
        clients_per_victim: clients_per_victim(clients, args.victims.len()),
        up,
        backoff_base_ms: f.backoff_base_ms,
        backoff_cap_ms: f.backoff_cap_ms,
        offered_rate: f.rate,
        kill_at_us: span.kill_us,
        victims_gone: span.gone,
        storm_secs: span.end_us.saturating_sub(span.kill_us) as f64 / 1e6,
        resume,
        target_secs: f.target_secs,
        target_met,
        presence,
        messages: live.sender.stats(),
        exactly_once,
        redis,
        cpu: span.cpu,
        machine_busy_cores: span.machine_busy_cores,
        machine_cores: machine_cores(),
        connect_errors_by_kind: fleet.errors(),
    })
}

/// How many of `n` clients start on each of `v` victims (client i on
/// victim i mod v).
pub fn clients_per_victim(n: usize, v: usize) -> Vec<usize> {
    (0..v).map(|i| (n + v - 1 - i) / v).collect()
}
