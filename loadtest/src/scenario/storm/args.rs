//! The `storm` command line and its hidden worker's.

use clap::Args;

use crate::cli::{CommonArgs, CpuArgs, PoolArgs};
use crate::harness::worker::WorkerArgs;

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("600")))]
#[command(mut_arg("per_worker", |a| a.default_value("10000")))]
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
    /// Storm clients in all (users `lt-st-<run>-<i>`, one device each).
    #[arg(short = 'n', long, default_value_t = 20_000)]
    pub clients: usize,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Messages per second through the survivors' API to random storm
    /// users, from before the kill until the end of the tail.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// API requests in flight at most.
    #[arg(long, default_value_t = 64)]
    pub http_concurrency: usize,
    /// Seconds of traffic before the kill.
    #[arg(long, default_value_t = 5)]
    pub baseline: u64,
    /// The target: every client resumed within this many seconds of the kill.
    #[arg(long, default_value_t = 30.0)]
    pub target_secs: f64,
    /// Seconds after the kill after which waiting for resumes stops.
    #[arg(long, default_value_t = 90)]
    pub storm_timeout: u64,
    /// Seconds of traffic after the last client resumed.
    #[arg(long, default_value_t = 5)]
    pub tail: u64,
    /// Seconds to wait, after the last send, until every accepted message
    /// arrived.
    #[arg(long, default_value_t = 20)]
    pub grace: u64,
    /// Backoff after a close: a random wait up to base · 2^(failures),
    /// capped (full jitter).
    #[arg(long, default_value_t = 1000)]
    pub backoff_base_ms: u64,
    #[arg(long, default_value_t = 16_000)]
    pub backoff_cap_ms: u64,
    /// Redis `host:port` whose `INFO stats` is sampled for ops/s.
    #[arg(long)]
    pub redis: Option<String>,
    /// How often Redis is sampled, in milliseconds.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(10..=1000))]
    pub redis_sample_ms: u64,
    #[command(flatten)]
    pub cpu: CpuArgs,
    /// A line the report carries (e.g. why several nodes were killed).
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
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
    #[arg(long)]
    pub backoff_base_ms: u64,
    #[arg(long)]
    pub backoff_cap_ms: u64,
}

/// The user name of storm client `i` of run `run`.
pub fn storm_user(run: u32, i: usize) -> String {
    format!("lt-st-{run}-{i}")
}
