//! The `storm` command line and its hidden worker's.

use clap::Args;

use super::fleet_args::{FleetArgs, RedisArgs};
use crate::cli::CpuArgs;
use crate::harness::worker::WorkerArgs;

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("600")))]
#[command(mut_arg("per_worker", |a| a.default_value("10000")))]
#[command(mut_arg("target_secs", |a| a.help(
    "The target: every client resumed within this many seconds of the kill"
)))]
pub struct StormArgs {
    /// A node whose clients storm (base URL); repeat. Client i connects to
    /// victim i mod (number of victims) first; all victims are killed with
    /// SIGKILL at the same moment.
    #[arg(long = "victim", required = true)]
    pub victims: Vec<String>,
    /// The PID of each `--victim`, in the same order. Only a process whose
    /// command name is `herald` is killed.
    #[arg(long = "victim-pid", required = true)]
    pub victim_pids: Vec<u32>,
    /// A node that survives (base URL); repeat. The API traffic goes to
    /// the survivors in turn, and the clients reconnect to them.
    #[arg(long = "survivor", required = true)]
    pub survivors: Vec<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Seconds after the kill after which waiting for resumes stops.
    #[arg(long, default_value_t = 90)]
    pub storm_timeout: u64,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub cpu: CpuArgs,
}

/// One storm worker process, started by `storm`.
#[derive(Args, Debug)]
pub struct StormWorkerArgs {
    /// The gateways are every node's base URL: those clients start on
    /// (the victims) first, then the others.
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// How many of the gateways clients start on, the first ones (the
    /// victims; client i starts on i mod this).
    #[arg(long)]
    pub homes: usize,
    /// Reconnect through a Service: to any node at random (`scaleout`),
    /// rather than to another that has not refused (the SDK's list).
    #[arg(long)]
    pub service: bool,
    /// With `--service`: how often each node's `/readyz` is probed, in
    /// ms; the Service then routes only to the ready ones (0: to every
    /// node, ready or not).
    #[arg(long, default_value_t = 0)]
    pub readiness_ms: u64,
    #[arg(long)]
    pub backoff_base_ms: u64,
    #[arg(long)]
    pub backoff_cap_ms: u64,
}

/// The user name of storm client `i` of run `run`.
pub fn storm_user(run: u32, i: usize) -> String {
    format!("lt-st-{run}-{i}")
}
