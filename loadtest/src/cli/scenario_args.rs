//! Groups of arguments several scenarios take: the common ones, the
//! processes to charge CPU time to, the spread over worker processes.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::Args;

use super::ClientOpts;

/// What every scenario takes: the server API key, the run's time limit,
/// where the JSON report goes, and the settings of its WebSocket clients.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Server API key.
    #[arg(long, env = "HERALD__API__KEY", hide_env_values = true)]
    pub api_key: String,
    /// Overall limit for the whole run, in seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientOpts,
}

impl CommonArgs {
    /// `--timeout`, which every scenario but `soak` gives a default.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout.expect("--timeout has a default")
    }

    /// [`CommonArgs::timeout_secs`] as the limit of a whole run.
    pub fn limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs())
    }
}

/// The processes whose CPU time a scenario charges its work to.
#[derive(Args, Debug, Clone)]
pub struct CpuArgs {
    /// A process whose CPU time (utime + stime from /proc) over the measured
    /// part is reported, also per unit of work, as `LABEL=PID` or `PID`;
    /// repeat for several (e.g. `a=123 --cpu-pid b=124 --cpu-pid redis=99`).
    #[arg(long = "cpu-pid", value_parser = crate::harness::cpu::parse_cpu_pid)]
    pub cpu_pids: Vec<(String, u32)>,
}

/// How a scenario spreads its clients over worker processes.
#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    /// Most connections one worker process holds (the process limit is 20,000 files).
    #[arg(long, default_value_t = 15_000)]
    pub per_worker: usize,
    /// First source address; worker w binds to this address + w, so each
    /// worker has its own ephemeral port range. 0.0.0.0: every worker lets
    /// the kernel pick (a pod talking to a Service).
    #[arg(long, default_value = "127.0.0.2")]
    pub source_ip_base: Ipv4Addr,
}
