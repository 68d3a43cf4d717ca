//! The `conn` command line, the stepwise walk's flags included.

use clap::{Args, ValueEnum};

use crate::cli::{CommonArgs, PoolArgs};

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("300")))]
pub struct ConnArgs {
    /// Gateway base URL (http://host:port); repeat for several nodes.
    /// Connection i goes to gateway i mod (number of gateways).
    #[arg(long = "gateway", required_unless_present = "gateway_cmd")]
    pub gateways: Vec<String>,
    /// PID of a gateway process whose RSS is measured; repeat for several.
    #[arg(long = "gateway-pid")]
    pub gateway_pids: Vec<u32>,
    /// Connections to open in all.
    #[arg(short = 'n', long, default_value_t = 15_000)]
    pub connections: usize,
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Number of the first worker: users are `lt-<worker>-<i>`, so
    /// coordinators sharing one cluster (the pods of k8s/loadtest) need
    /// bases far enough apart.
    #[arg(long, default_value_t = 0)]
    pub worker_id_base: usize,
    /// Broadcast rounds after all connections are up.
    #[arg(long, default_value_t = 10)]
    pub rounds: u32,
    /// Pause between broadcast rounds, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub round_interval_ms: u64,
    /// Seconds to wait for every connection to receive one round.
    #[arg(long, default_value_t = 30)]
    pub round_timeout: u64,
    /// Seconds to let the gateway settle (idle) before reading its RSS.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Where to POST broadcasts: the first gateway (a cluster fans out itself)
    /// or every gateway (independent nodes with the memory backend).
    #[arg(long, value_enum, default_value = "first")]
    pub post_to: PostTo,
    #[command(flatten)]
    pub common: CommonArgs,
    /// The stepwise walk (`--steps`).
    #[command(flatten)]
    pub steps: StepArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PostTo {
    First,
    All,
}

impl PostTo {
    /// The gateways a broadcast is posted to.
    pub fn targets<'a>(self, gateways: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let all = gateways.into_iter().cloned();
        match self {
            PostTo::First => all.take(1).collect(),
            PostTo::All => all.collect(),
        }
    }
}

/// The stepwise mode's flags (part of `conn`).
#[derive(Args, Debug, Clone, Default)]
pub struct StepArgs {
    /// Walk in steps: the total connections after each step, comma-separated
    /// (e.g. 100000,200000,400000). Connections are held across steps (each
    /// step opens the difference), one broadcast per step; -n and --rounds
    /// do not apply. Stops by itself at --mem-floor-mib or --timeout.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub steps: Vec<usize>,
    /// With --steps: a shell command (`sh -c`) that runs one gateway in the
    /// foreground (`exec`, so its PID is the gateway's) on
    /// 127.0.0.1:$HERALD_LT_GATEWAY_PORT; the walk starts as many as its
    /// steps need, numbered by $HERALD_LT_GATEWAY_INDEX from 0, and stops
    /// them at the end (and they get SIGTERM if the walk dies).
    #[arg(long)]
    pub gateway_cmd: Option<String>,
    /// With --gateway-cmd: the most connections one gateway gets.
    #[arg(long, default_value_t = 19_000)]
    pub per_gateway: usize,
    /// With --steps: stop when MemAvailable (/proc/meminfo) is below this
    /// many MiB, or would be after the next step or during its broadcast
    /// (projected from the memory per connection so far). Checked before
    /// each step, every 250 ms while connecting, and before each broadcast.
    #[arg(long, default_value_t = 2560)]
    pub mem_floor_mib: u64,
    /// With --steps: halt a step whose connects set no new high of TCP
    /// sockets in use on this machine for this many seconds, saying why
    /// (0: never). Connects that fail and retry hold it flat.
    #[arg(long, default_value_t = 60)]
    pub stall_secs: u64,
    /// With --steps: the gateways' Redis (redis://[[user]:password@]host:port),
    /// whose `INFO memory` is read at each step.
    #[arg(long)]
    pub redis_url: Option<String>,
}
