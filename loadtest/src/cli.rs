//! Command-line interface. Secrets come from the same environment variables
//! the gateway reads, so a script sets them once for both processes.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::scenario;

#[derive(Parser, Debug)]
#[command(
    name = "herald-loadtest",
    version,
    about = "Load generator for the Herald gateway"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Idle connections: gateway RSS per connection, connect rate, broadcast fan-out.
    Conn(scenario::conn::ConnArgs),
    /// Cross-node unicast latency at a fixed offered rate.
    Unicast(scenario::unicast::UnicastArgs),
    /// Notification center: `mark` on node A, time to the `counts` push on node B.
    Mark(scenario::mark::MarkArgs),
    /// Publish to a topic with many subscribers: time to the 202, to the
    /// job's `done`, and to the last live receiver.
    Fanout(scenario::fanout::FanoutArgs),
    /// Kill -9 nodes under many clients: time until they resumed on the
    /// others, exactly-once of the messages sent meanwhile, Redis load.
    Storm(scenario::storm::StormArgs),
    /// Nodes added under many clients: time until every node holds its
    /// share, moves against the ideal, exactly-once meanwhile.
    Scaleout(scenario::scaleout::ScaleoutArgs),
    /// A rolling deploy under many clients: each node in turn replaced
    /// (SIGTERM, drain), time until its clients are back, exactly-once.
    Rolling(scenario::rolling::RollingArgs),
    /// A steady mix for a long time: drift of gateway RSS and latency per window.
    Soak(scenario::soak::SoakArgs),
    /// Many scheduled sends due in one second, then many snoozes waking in
    /// one second: time until all are delivered (woken), exactly once.
    Schedule(scenario::schedule::ScheduleArgs),
    /// Internal: one process of `storm` clients, driven over stdin/stdout.
    #[command(hide = true)]
    StormWorker(scenario::storm::StormWorkerArgs),
    /// Internal: one connection-holding process driven by `conn` over stdin/stdout.
    #[command(hide = true)]
    Worker(crate::harness::worker::WorkerArgs),
}

/// The WebSocket encoding the clients ask for.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CodecArg {
    Json,
    Msgpack,
}

impl CodecArg {
    pub fn codec(self) -> herald_protocol::Codec {
        match self {
            CodecArg::Json => herald_protocol::Codec::Json,
            CodecArg::Msgpack => herald_protocol::Codec::MsgPack,
        }
    }
}

/// How the `conn` and `fanout` workers hold their connections.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ClientMode {
    /// `lean` with the JSON codec, `tungstenite` with MessagePack.
    Auto,
    /// One mio reactor per thread reading every socket into one scratch
    /// buffer: no task and no read buffer per idle connection (JSON only).
    Lean,
    /// A tokio task and a tokio-tungstenite stream per connection.
    Tungstenite,
}

impl ClientMode {
    /// The mode `Auto` stands for with `codec`; lean with MessagePack is
    /// refused.
    pub fn resolve(self, codec: CodecArg) -> anyhow::Result<ClientMode> {
        Ok(match (self, codec) {
            (ClientMode::Auto, CodecArg::Json) => ClientMode::Lean,
            (ClientMode::Auto, CodecArg::Msgpack) => ClientMode::Tungstenite,
            (ClientMode::Lean, CodecArg::Msgpack) => anyhow::bail!(
                "--client-mode lean reads JSON frames only: use --codec json or --client-mode tungstenite"
            ),
            (mode, _) => mode,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientMode::Auto => "auto",
            ClientMode::Lean => "lean",
            ClientMode::Tungstenite => "tungstenite",
        }
    }
}

/// Settings every WebSocket client of the load generator shares.
#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// HS256 secret the gateway verifies tokens with.
    #[arg(long, env = "HERALD__AUTH__JWT_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Subprotocol (encoding) to ask for.
    #[arg(long, value_enum, default_value = "json")]
    pub codec: CodecArg,
    /// Client-side WebSocket read buffer. Small, so the load generator itself
    /// stays lean (tungstenite's default is 128 KiB per connection).
    #[arg(long, default_value_t = 4096)]
    pub read_buffer: usize,
    /// Seconds one connect attempt (TCP + handshake + welcome) may take.
    #[arg(long, default_value_t = 15)]
    pub connect_timeout: u64,
    /// Extra attempts per connection after a failed one.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Connect attempts in flight at once, per process.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// How `conn` and `fanout` workers hold connections (lean needs JSON;
    /// `--read-buffer` is the tungstenite mode's).
    #[arg(long, value_enum, default_value = "auto")]
    pub client_mode: ClientMode,
}

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

/// A target given as `http://host:port`, `ws://host:port` or
/// `ws://host:port/ws` → its base URL `http://host:port`.
pub fn base_url(target: &str) -> String {
    let t = target.trim_end_matches('/');
    let t = t.strip_suffix("/ws").unwrap_or(t);
    if let Some(rest) = t.strip_prefix("ws://") {
        format!("http://{rest}")
    } else if let Some(rest) = t.strip_prefix("wss://") {
        format!("https://{rest}")
    } else {
        t.to_owned()
    }
}

/// `http://host:port` → `ws://host:port/ws`.
pub fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| base.strip_prefix("https://").map(|r| format!("wss://{r}")))
        .unwrap_or_else(|| base.to_owned());
    format!("{rest}/ws")
}
