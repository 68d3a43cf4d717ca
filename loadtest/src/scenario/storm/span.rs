//! The storm itself: the kill, the wait until every client resumed, and
//! what it cost — the `--cpu-pid` processes, the load generator, the whole
//! machine (other jobs share it), and Redis's ops/s around it.
//!
//! The kill is a node failure: SIGKILL to every victim at the same moment,
//! as a machine or container dying would — no drain, no `reconnect`
//! frame, sockets closed by the kernel. Only PIDs given on the command
//! line are touched, and only if they still name a `herald` process (a PID
//! reused since the script started the node is left alone).

use std::time::Duration;

use anyhow::bail;
use herald_harness::clock::unix_micros;
use herald_harness::machine::{busy_cores, machine_ticks};
use herald_harness::redis_info;
use tokio::time::Instant;

use super::args::StormArgs;
use super::fleet::Fleet;
use super::fleet_report::RedisLoad;
use super::pipe::ClientOutcome;
use super::traffic::{line, Live};
use crate::bounded::wait_until;
use crate::harness::cpu::{CpuMeter, ProcessCpu, Share};

/// The kill and what followed, until the last resume (or the give-up).
pub struct Span {
    pub kill_us: u64,
    pub end_us: u64,
    pub gone: bool,
    pub cpu: Vec<ProcessCpu>,
    pub machine_busy_cores: f64,
}

/// Kills every victim, then waits until every client resumed (or
/// `--storm-timeout`), reading the `--cpu-pid` processes around it.
pub async fn kill_and_wait(
    args: &StormArgs,
    fleet: &mut Fleet,
    live: &Live,
) -> anyhow::Result<Span> {
    let loadgen =
        std::iter::once(std::process::id()).chain(fleet.pool.pids().into_iter().flatten());
    let cpu = CpuMeter::start(&args.cpu.cpu_pids, Some(loadgen.collect()));
    let machine_before = machine_ticks();
    let kill_us = kill_all(&args.victim_pids)?;
    let killed = Instant::now();
    eprintln!("storm: kill -9 {:?}", args.victim_pids);
    let gone = wait_gone(&args.victim_pids, Duration::from_secs(2)).await;
    let clients = args.fleet.clients;
    let all_back = move |f: &Fleet| {
        let t = f.total();
        t.clients_resumed >= clients && t.lost == t.resumed
    };
    let limit = killed + Duration::from_secs(args.storm_timeout);
    let done = fleet
        .pump(
            limit,
            |p| line("storm", live, Some(("kill", kill_us)), p, clients),
            all_back,
        )
        .await?;
    let end_us = unix_micros();
    if !done {
        eprintln!("storm: gave up waiting after {} s", args.storm_timeout);
    }
    let span_us = end_us.saturating_sub(kill_us).max(1) as f64;
    let cpu = cpu.rows(|us| Share::Cores {
        cores: us as f64 / span_us,
    });
    let machine_busy_cores = machine_before
        .zip(machine_ticks())
        .map(|(b, a)| busy_cores(b, a, machine_cores()))
        .unwrap_or(0.0);
    Ok(Span {
        kill_us,
        end_us,
        gone,
        cpu,
        machine_busy_cores,
    })
}

/// Cores this machine has.
pub fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Redis's load from the kill to the last resume, against the baseline.
pub fn redis_load(
    args: &StormArgs,
    samples: &[redis_info::Sample],
    live: &Live,
    span: &Span,
    outcomes: &[ClientOutcome],
) -> RedisLoad {
    // From the kill to the last resume (the coordinator notices it up to
    // one progress interval later).
    let last = outcomes
        .iter()
        .flat_map(|c| c.episodes.iter().filter(|x| x.lost_us >= span.kill_us))
        .filter_map(|x| x.resumed_us)
        .max();
    let (k, e) = (span.kill_us, last.unwrap_or(span.end_us).min(span.end_us));
    let baseline = redis_info::mean(samples, live.started_us + 1_000_000, k);
    let resumed = outcomes
        .iter()
        .filter(|c| {
            c.episodes
                .iter()
                .any(|x| x.lost_us >= k && x.resumed_us.is_some())
        })
        .count();
    let above = redis_info::commands_between(samples, k, e)
        .zip(baseline)
        .map(|(c, b)| c as f64 - b * (e.saturating_sub(k)) as f64 / 1e6);
    RedisLoad {
        sample_ms: args.redis.redis_sample_ms,
        samples: samples.len(),
        baseline_ops: baseline,
        peak_ops_100ms: redis_info::peak(samples, k, e, Duration::from_millis(100)),
        peak_ops_1s: redis_info::peak(samples, k, e, Duration::from_secs(1)),
        storm_mean_ops: redis_info::mean(samples, k, e),
        commands_per_resume: above.filter(|_| resumed > 0).map(|a| a / resumed as f64),
    }
}

/// The command name of `pid`, from `/proc/<pid>/comm`.
fn comm(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim().to_owned())
}

/// Whether `pid` is gone or a zombie (killed, not yet reaped by its parent).
pub fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Checks every victim before the run, so a wrong PID fails early.
pub fn check_victims(pids: &[u32]) -> anyhow::Result<()> {
    for &pid in pids {
        match comm(pid) {
            Some(c) if c == "herald" => {}
            Some(c) => bail!("--victim-pid {pid} is `{c}`, not a herald node"),
            None => bail!("--victim-pid {pid}: no such process"),
        }
    }
    Ok(())
}

/// SIGKILLs every victim, one syscall after the other; returns when the
/// first signal went out (unix µs), the moment resume times count from.
pub fn kill_all(pids: &[u32]) -> anyhow::Result<u64> {
    signal_all(pids, libc::SIGKILL)
}

/// Sends `signal` to every one of `pids`, each checked to be a herald node
/// first; returns when the first went out (unix µs).
pub fn signal_all(pids: &[u32], signal: libc::c_int) -> anyhow::Result<u64> {
    check_victims(pids)?;
    let at = unix_micros();
    for &pid in pids {
        // SAFETY: kill has no memory preconditions; the PID was checked
        // to be a herald node just above.
        if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
            bail!("kill -{signal} {pid}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(at)
}

/// Waits (at most `limit`) until every victim is gone; false if one lives.
pub async fn wait_gone(pids: &[u32], limit: Duration) -> bool {
    let all_gone = || pids.iter().all(|&p| gone(p));
    wait_until(limit, Duration::from_millis(10), all_gone).await
}
