//! The frame of a fleet run — `storm`, `scaleout` and `rolling` — around
//! each one's own event (the kill, the scale-out, the roll): the workers
//! spawned and closed whatever happens, every client connected first, the
//! tail and the grace after, the workers' reports collected, the report
//! printed and written. Each scenario brings its event and its report;
//! the rest is here once, so that the three measure alike.

use std::time::Duration;

use anyhow::{bail, ensure};
use serde::Serialize;
use tokio::time::Instant;

use super::fleet::{Fleet, Plan};
use super::fleet_args::FleetArgs;
use super::fleet_report::FleetUp;
use super::pipe::{ClientOutcome, Command, Event, Progress};
use super::traffic::Live;
use crate::harness::report::write_json;

/// Spawns the fleet `plan` says, runs `scenario` with the run's nonce and
/// the fleet, closes the fleet (also when `scenario` failed: no worker
/// outlives the run), then prints the report and writes its JSON.
pub async fn run<R: Serialize>(
    plan: &Plan<'_>,
    scenario: impl AsyncFnOnce(u32, &mut Fleet) -> anyhow::Result<R>,
    print: fn(&R),
) -> anyhow::Result<()> {
    let run = crate::stamp::run_nonce();
    let mut fleet = Fleet::spawn(plan, run)?;
    let result = scenario(run, &mut fleet).await;
    fleet.close().await;
    let report = result?;
    print(&report);
    write_json(plan.args.common.out.as_deref(), &report)
}

/// All workers up, then every client connected and synced on its first
/// node (`name` heads the progress lines).
pub async fn connect(name: &str, args: &FleetArgs, fleet: &mut Fleet) -> anyhow::Result<FleetUp> {
    let clients = args.clients;
    let all: Vec<usize> = (0..fleet.pool.len()).collect();
    let until = Instant::now() + Duration::from_secs(30);
    let hello = |ev| matches!(ev, Event::Hello).then_some(());
    fleet.pool.gather_all(&all, until, hello).await?;
    let started = Instant::now();
    fleet.pool.tell_all(&Command::Connect).await?;
    let limit = started + Duration::from_secs(240);
    let line = |p: &Progress| {
        format!(
            "{name} connect: {} / {clients} online, {} refused",
            p.online, p.refused
        )
    };
    if !fleet.pump(limit, line, |f| f.connected().is_some()).await? {
        bail!("the connect phase did not end within 240 s");
    }
    let connected = fleet.connected().unwrap_or_default();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{name}: {} of {clients} clients connected in {secs:.1} s",
        connected.ok
    );
    ensure!(
        connected.ok > 0,
        "no client connected: {:?}",
        connected.errors
    );
    Ok(FleetUp::new(fleet, args.note.clone(), connected, secs))
}

/// The tail: `--tail` seconds more of traffic (`line` the progress), then
/// no more sends, and the wait until every accepted message arrived.
pub async fn tail(
    name: &str,
    args: &FleetArgs,
    fleet: &mut Fleet,
    live: &mut Live,
    line: impl Fn(&Live, &Progress) -> String,
) -> anyhow::Result<()> {
    fleet.pump_for(args.tail, |p| line(live, p)).await?;
    live.stop_sending().await;
    converge(name, args.grace, fleet, live).await
}

/// Waits until the clients hold as many distinct messages as were
/// accepted (or `grace` seconds are over).
async fn converge(name: &str, grace: u64, fleet: &mut Fleet, live: &Live) -> anyhow::Result<()> {
    let accepted = live.sender.accepted_count();
    let limit = Instant::now() + Duration::from_secs(grace);
    let line = |p: &Progress| format!("{name}: converging, {} of {accepted} received", p.received);
    fleet
        .pump(limit, line, |f| f.total().received >= accepted)
        .await?;
    Ok(())
}

/// Every worker's final report (120 s at most).
pub async fn collect(fleet: &mut Fleet) -> anyhow::Result<Vec<ClientOutcome>> {
    fleet.pool.tell_all(&Command::Report).await?;
    let limit = Instant::now() + Duration::from_secs(120);
    let line = |_: &Progress| "collecting the workers' reports".to_owned();
    if !fleet.pump(limit, line, |f| f.reports().is_some()).await? {
        bail!("not every worker reported within 120 s");
    }
    Ok(fleet.reports().unwrap_or_default())
}
