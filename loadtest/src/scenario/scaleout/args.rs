//! The `scaleout` command line (its workers are `storm`'s).

use std::path::PathBuf;

use clap::Args;

use crate::cli::{CommonArgs, PoolArgs};

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("900")))]
#[command(mut_arg("per_worker", |a| a.default_value("12000")))]
pub struct ScaleoutArgs {
    /// A node running from the start (base URL); repeat. Client i connects
    /// to first node i mod (number of first nodes); the API traffic goes to
    /// these in turn.
    #[arg(long = "first", required = true)]
    pub first: Vec<String>,
    /// A node started at the scale-out (base URL, its port free until
    /// then); repeat. Refuses connections until it runs.
    #[arg(long = "new", required = true)]
    pub new: Vec<String>,
    /// The file this run creates when the new nodes are to start: the
    /// script waits for it, then starts them.
    #[arg(long)]
    pub start_file: PathBuf,
    /// Clients in all (users `lt-st-<run>-<i>`, one device each).
    #[arg(short = 'n', long, default_value_t = 34_000)]
    pub clients: usize,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Messages per second through the first nodes' API to random
    /// clients, from before the scale-out until the end of the tail.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// API requests in flight at most.
    #[arg(long, default_value_t = 64)]
    pub http_concurrency: usize,
    /// Seconds of traffic before the new nodes start.
    #[arg(long, default_value_t = 10)]
    pub baseline: u64,
    /// The target: every node within the band of the mean this many
    /// seconds after the new nodes were asked to start.
    #[arg(long, default_value_t = 120.0)]
    pub target_secs: f64,
    /// The band: every node within mean × (1 ± this).
    #[arg(long, default_value_t = 0.15)]
    pub tolerance: f64,
    /// The target: moves at most this many times the ideal number.
    #[arg(long, default_value_t = 1.2)]
    pub max_move_ratio: f64,
    /// Seconds the nodes' counts must stay in the band, with no node
    /// moving, before the watch ends (above the nodes' settle and interval).
    #[arg(long, default_value_t = 20)]
    pub quiet: u64,
    /// Seconds after the start of the new nodes after which the watch ends
    /// anyway.
    #[arg(long, default_value_t = 300)]
    pub watch_timeout: u64,
    /// Seconds of traffic after the watch.
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
    /// A line the report carries (e.g. the nodes' rebalancing settings).
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl ScaleoutArgs {
    /// Every node: the first ones, then the new ones.
    pub fn nodes(&self) -> Vec<String> {
        self.first.iter().chain(&self.new).cloned().collect()
    }
}
