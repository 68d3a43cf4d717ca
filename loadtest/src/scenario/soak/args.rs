//! The `soak` command line.

use std::time::Duration;

use clap::Args;

use crate::cli::CommonArgs;

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.help("Overall limit, in seconds (default: the duration plus 5 minutes)")))]
pub struct SoakArgs {
    /// Gateway base URL; repeat. Client i connects to gateway i mod the
    /// number of gateways first; API requests go to them in turn.
    #[arg(long = "gateway", required = true)]
    pub gateways: Vec<String>,
    /// A gateway process whose RSS and CPU are read every window; repeat.
    #[arg(long = "gateway-pid")]
    pub gateway_pids: Vec<u32>,
    /// Redis `host:port` whose `INFO stats` gives ops/s per window.
    #[arg(long)]
    pub redis: Option<String>,
    /// Clients (users `lt-so-<run>-<i>`, one resuming device each), all in
    /// this process.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=15_000))]
    pub clients: u64,
    /// Seconds the mix runs for.
    #[arg(long, default_value_t = 600)]
    pub duration: u64,
    /// Seconds per reporting window.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub window: u64,
    /// Private messages per second through the API to random clients.
    #[arg(long, default_value_t = 200.0)]
    pub unicast_rate: f64,
    /// Seconds between broadcasts (`to.all`); 0 for none.
    #[arg(long, default_value_t = 10)]
    pub broadcast_every: u64,
    /// `mark` requests per second (`read`, `all`) from random online clients.
    #[arg(long, default_value_t = 20.0)]
    pub mark_rate: f64,
    /// Clients per second that close their connection and reconnect.
    #[arg(long, default_value_t = 5.0)]
    pub churn_rate: f64,
    /// API requests in flight at most.
    #[arg(long, default_value_t = 64)]
    pub http_concurrency: usize,
    /// Seconds to wait after the mix for messages still in flight.
    #[arg(long, default_value_t = 10)]
    pub grace: u64,
    /// Reconnect backoff (full jitter), as in `storm`.
    #[arg(long, default_value_t = 200)]
    pub backoff_base_ms: u64,
    #[arg(long, default_value_t = 5_000)]
    pub backoff_cap_ms: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl SoakArgs {
    /// `--timeout`, or the duration plus 5 minutes.
    pub fn limit(&self) -> Duration {
        Duration::from_secs(self.common.timeout.unwrap_or(self.duration + 300))
    }
}

/// The user name of soak client `i` of run `run`.
pub fn soak_user(run: u32, i: usize) -> String {
    format!("lt-so-{run}-{i}")
}
