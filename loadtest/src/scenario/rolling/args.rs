//! The `rolling` command line (its workers are `storm`'s).

use std::path::PathBuf;

use clap::Args;

use crate::cli::{CommonArgs, PoolArgs};

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("1200")))]
#[command(mut_arg("per_worker", |a| a.default_value("12000")))]
pub struct RollingArgs {
    /// A node running from the start (base URL); repeat. Client i connects
    /// to old node i mod (number of old nodes); rolled in this order.
    #[arg(long = "old", required = true)]
    pub old: Vec<String>,
    /// The PID of each `--old`, in the same order: SIGTERM in its turn
    /// (only a process whose command name is `herald`).
    #[arg(long = "old-pid", required = true)]
    pub old_pids: Vec<u32>,
    /// The replacement of each `--old`, in the same order (base URL, its
    /// port free until then). Refuses connections until it runs.
    #[arg(long = "new", required = true)]
    pub new: Vec<String>,
    /// Where this run creates `start-<i>` when replacement i is to start:
    /// the script waits for each, then starts it.
    #[arg(long)]
    pub start_dir: PathBuf,
    /// Clients in all (users `lt-st-<run>-<i>`, one device each).
    #[arg(short = 'n', long, default_value_t = 36_000)]
    pub clients: usize,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Messages per second through the API of the nodes up (not
    /// draining), to random clients, from the baseline to the end of the tail.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// API requests in flight at most.
    #[arg(long, default_value_t = 64)]
    pub http_concurrency: usize,
    /// Seconds of traffic before the roll.
    #[arg(long, default_value_t = 5)]
    pub baseline: u64,
    /// The target: every client of a node back (resumed elsewhere) within
    /// this many seconds of its node's SIGTERM.
    #[arg(long, default_value_t = 30.0)]
    pub target_secs: f64,
    /// Seconds a step may take (replacement ready, then every client back
    /// and the old node gone) before the run gives up.
    #[arg(long, default_value_t = 180)]
    pub step_timeout: u64,
    /// Seconds of traffic after the last step.
    #[arg(long, default_value_t = 5)]
    pub tail: u64,
    /// Seconds to wait, after the last send, until every accepted message
    /// arrived.
    #[arg(long, default_value_t = 20)]
    pub grace: u64,
    /// Backoff after a refused connect: a random wait up to base ·
    /// 2^(failures), capped (full jitter).
    #[arg(long, default_value_t = 1000)]
    pub backoff_base_ms: u64,
    #[arg(long, default_value_t = 16_000)]
    pub backoff_cap_ms: u64,
    /// Reconnect as the SDK's node list does (to another node that has
    /// not refused since the last connection) rather than through a
    /// Service (any node at random).
    #[arg(long)]
    pub sdk_list: bool,
    /// Redis `host:port` whose `INFO stats` is sampled for ops/s.
    #[arg(long)]
    pub redis: Option<String>,
    /// How often Redis is sampled, in milliseconds.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(10..=1000))]
    pub redis_sample_ms: u64,
    /// A line the report carries (e.g. the size against the target's).
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl RollingArgs {
    /// Every node, as the Service lists them: the old ones, then the new.
    pub fn nodes(&self) -> Vec<String> {
        self.old.iter().chain(&self.new).cloned().collect()
    }
}
