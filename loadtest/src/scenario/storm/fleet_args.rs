//! The command line of a fleet run — `storm`, `scaleout` and `rolling`:
//! the clients, their traffic and its phases, declared once so that the
//! three keep the same flags; each scenario gives its own defaults with
//! `mut_arg` where they differ.

use anyhow::ensure;
use clap::Args;

use crate::cli::{CommonArgs, PoolArgs};

/// Most connections one process may hold here, less some for the rest.
pub const MAX_PER_PROCESS: usize = 19_000;

/// What every fleet run takes.
#[derive(Args, Debug)]
pub struct FleetArgs {
    /// Clients in all (users `lt-st-<run>-<i>`, one device each).
    #[arg(short = 'n', long, default_value_t = 20_000)]
    pub clients: usize,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Messages per second through the API to random clients, from the
    /// baseline to the end of the tail.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// API requests in flight at most.
    #[arg(long, default_value_t = 64)]
    pub http_concurrency: usize,
    /// Seconds of traffic before the event (the kill, the scale-out, the
    /// roll).
    #[arg(long, default_value_t = 5)]
    pub baseline: u64,
    /// The target, in seconds after the event (see the report's target).
    #[arg(long, default_value_t = 30.0)]
    pub target_secs: f64,
    /// Seconds of traffic after the event is over.
    #[arg(long, default_value_t = 5)]
    pub tail: u64,
    /// Seconds to wait, after the last send, until every accepted message
    /// arrived.
    #[arg(long, default_value_t = 20)]
    pub grace: u64,
    /// Backoff after a close or a refused connect: a random wait up to
    /// base · 2^(failures), capped (full jitter).
    #[arg(long, default_value_t = 1000)]
    pub backoff_base_ms: u64,
    #[arg(long, default_value_t = 16_000)]
    pub backoff_cap_ms: u64,
    /// Clients reconnecting through a Service: probe each node's `/readyz`
    /// every this many ms and route only to the ready ones, a node out
    /// after 2 failed probes in a row, as kube-proxy with the manifest's
    /// readiness probe (5000). 0: route to every address, gone, draining
    /// or not started included.
    #[arg(long, default_value_t = 0)]
    pub service_readiness_ms: u64,
    /// A line the report carries (e.g. why several nodes were killed, or
    /// the nodes' settings).
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl FleetArgs {
    /// The checks every fleet run makes of its own figures.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.clients > 0 && self.rate > 0.0,
            "--clients and --rate must be positive"
        );
        ensure!(
            self.pool.per_worker <= MAX_PER_PROCESS,
            "--per-worker at most {MAX_PER_PROCESS}"
        );
        Ok(())
    }
}

/// The Redis a fleet run watches (`storm`, `rolling`).
#[derive(Args, Debug)]
pub struct RedisArgs {
    /// Redis `host:port` whose `INFO stats` is sampled for ops/s.
    #[arg(long)]
    pub redis: Option<String>,
    /// How often Redis is sampled, in milliseconds.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(10..=1000))]
    pub redis_sample_ms: u64,
}

impl RedisArgs {
    /// What the sampler takes: the address and its interval, if given.
    pub fn sampled(&self) -> Option<(String, u64)> {
        (self.redis.clone()).map(|r| (r, self.redis_sample_ms))
    }
}
