//! The `fanout` command line.

use clap::Args;

use crate::cli::{CommonArgs, CpuArgs, PoolArgs};

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("900")))]
pub struct FanoutArgs {
    /// Gateway base URL (http://host:port); repeat for several nodes.
    /// Subscribes are spread over them, receiver i connects to gateway
    /// i mod (number of gateways), and the publish and job polls go to the
    /// first.
    #[arg(long = "gateway", required = true)]
    pub gateways: Vec<String>,
    /// Users subscribed to the run's fresh topic (through the server API).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub subscribers: u64,
    /// Subscribers that also hold a WebSocket connection, in worker
    /// processes; spread evenly over the topic's snapshot order.
    #[arg(long, default_value_t = 10_000)]
    pub receivers: usize,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Subscribe requests in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub subscribe_concurrency: u64,
    /// Publishes (each a fresh job to the same subscribers), one after the
    /// other.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Pause between rounds, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub round_interval_ms: u64,
    /// How often `GET /v1/jobs/{id}` is polled, in milliseconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub poll_ms: u64,
    /// Seconds one round may take, from the publish to the last delivery.
    #[arg(long, default_value_t = 120)]
    pub round_timeout: u64,
    /// Seconds to wait, after the job is done, for deliveries still in
    /// flight; and after the last round, for late duplicates.
    #[arg(long, default_value_t = 5)]
    pub grace: u64,
    /// The target: a publish completes (job done, every live receiver has
    /// it) within this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub target_secs: f64,
    #[command(flatten)]
    pub cpu: CpuArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}
