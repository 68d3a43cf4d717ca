//! Command-line interface. Secrets come from the same environment variables
//! the gateway reads, so a script sets them once for both processes.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    Conn(ConnArgs),
    /// Cross-node unicast latency at a fixed offered rate.
    Unicast(UnicastArgs),
    /// Notification center: `mark` on node A, time to the `counts` push on node B.
    Mark(MarkArgs),
    /// Publish to a topic with many subscribers: time to the 202, to the
    /// job's `done`, and to the last live receiver.
    Fanout(FanoutArgs),
    /// Kill -9 nodes under many clients: time until they resumed on the
    /// others, exactly-once of the messages sent meanwhile, Redis load.
    Storm(crate::storm::StormArgs),
    /// A steady mix for a long time: drift of gateway RSS and latency per window.
    Soak(crate::soak::SoakArgs),
    /// Internal: one process of `storm` clients, driven over stdin/stdout.
    #[command(hide = true)]
    StormWorker(crate::storm::StormWorkerArgs),
    /// Internal: one connection-holding process driven by `conn` over stdin/stdout.
    #[command(hide = true)]
    Worker(WorkerArgs),
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

#[derive(Args, Debug)]
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
    /// Most connections one worker process holds (the process limit is 20,000 files).
    #[arg(long, default_value_t = 15_000)]
    pub per_worker: usize,
    /// First source address; worker w binds to this address + w, so each
    /// worker has its own ephemeral port range. 0.0.0.0: every worker lets
    /// the kernel pick (a pod talking to a Service).
    #[arg(long, default_value = "127.0.0.2")]
    pub source_ip_base: Ipv4Addr,
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
    /// Server API key for POST /v1/messages.
    #[arg(long, env = "HERALD__API__KEY", hide_env_values = true)]
    pub api_key: String,
    /// Overall limit for the whole run, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientOpts,
    /// The stepwise walk (`--steps`).
    #[command(flatten)]
    pub steps: crate::scenario_conn::StepArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PostTo {
    First,
    All,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Gateway base URLs, in the coordinator's order.
    #[arg(long = "gateway", required = true)]
    pub gateways: Vec<String>,
    /// This worker's number; users are `lt-<worker>-<i>`.
    #[arg(long)]
    pub worker_id: usize,
    /// Global index of this worker's first connection (picks the gateway).
    #[arg(long)]
    pub first: usize,
    /// Connections this worker opens.
    #[arg(long)]
    pub count: usize,
    /// The coordinator's run nonce; broadcasts of other runs are ignored.
    #[arg(long, default_value_t = 0)]
    pub run: u32,
    /// Source address every socket of this worker binds to.
    #[arg(long)]
    pub source_ip: Ipv4Addr,
    /// Seconds after which the worker gives up and exits on its own.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    #[command(flatten)]
    pub client: ClientOpts,
}

/// How unicast messages enter the cluster.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Via {
    /// POST /v1/messages on the sending gateway (a backend's path).
    Http,
    /// `send` frames from WebSocket sender connections (a user's path).
    Ws,
}

#[derive(Args, Debug)]
pub struct UnicastArgs {
    /// Gateway that messages enter (base URL).
    #[arg(long)]
    pub from: String,
    /// Gateway that holds the receivers (base URL).
    #[arg(long)]
    pub to: String,
    /// Receiver connections on the `--to` gateway (users `lt-r-<i>`).
    #[arg(long, default_value_t = 1000)]
    pub receivers: usize,
    /// Offered rate in messages per second (the first rate with --find-max).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds each trial sends for.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// How messages are sent.
    #[arg(long, value_enum, default_value = "http")]
    pub via: Via,
    /// Concurrent HTTP requests (keep-alive pool) for --via http.
    #[arg(long, default_value_t = 64)]
    pub http_concurrency: usize,
    /// With --via http, messages due at the same moment go out in
    /// `POST /v1/messages/batch` requests of up to this many (a backend
    /// flushing its queue); 1 sends each with `POST /v1/messages`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch: u16,
    /// Sender connections on the `--from` gateway for --via ws (users `lt-s-<i>`).
    #[arg(long, default_value_t = 16)]
    pub senders: usize,
    /// Seconds to wait after the last send for deliveries still in flight.
    #[arg(long, default_value_t = 5)]
    pub grace: u64,
    /// `LABEL=PID` or `PID` whose CPU time is charged to the messages
    /// (gateways, Redis); repeat for several. Reported as CPU µs per
    /// accepted message, per process, user and system time apart.
    #[arg(long = "cpu-pid")]
    pub cpu_pids: Vec<String>,
    /// Search for the highest sustained rate, starting at --rate.
    #[arg(long)]
    pub find_max: bool,
    /// Upper bound of the search, msg/s.
    #[arg(long, default_value_t = 200_000.0)]
    pub max_rate: f64,
    /// Sustained means p99 at most this many milliseconds (and no loss, and
    /// an achieved send rate of at least 95% of the offered one).
    #[arg(long, default_value_t = 100)]
    pub max_p99_ms: u64,
    /// Server API key for POST /v1/messages.
    #[arg(long, env = "HERALD__API__KEY", hide_env_values = true)]
    pub api_key: String,
    /// Overall limit for the whole run, in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Seconds of traffic at the first rate before the first measured
    /// trial, not reported: freshly started nodes and connections pay
    /// one-off costs (allocator growth, script loading, TCP windows) that
    /// showed up as a worse p99 in whichever trial ran first.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Also write the report(s) as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientOpts,
}

#[derive(Args, Debug)]
pub struct MarkArgs {
    /// The two gateway nodes, comma-separated: the marker connections go to
    /// the first (A), the watcher connections to the second (B). Base URLs
    /// (`http://host:port`) or WebSocket URLs (`ws://host:port[/ws]`);
    /// loopback addresses only. The setup messages are posted to A.
    #[arg(long, value_delimiter = ',', num_args = 1.., required = true)]
    pub targets: Vec<String>,
    /// Users; each has one connection on A (marks) and one on B (watches
    /// the counts). Users are `lt-m-<run>-<i>`, new in every run.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub users: u32,
    /// Messages posted to each user before the run (something to mark).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub messages: u32,
    /// Offered rate in marks per second (all users together).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds the measured trial marks for.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration: u64,
    /// Seconds of marks at the same rate before the measured trial, not
    /// reported (fresh nodes and connections pay one-off costs).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub warmup: u64,
    /// A mark whose reply or counts push has not arrived this many
    /// milliseconds after it was sent counts as timed out.
    #[arg(long, default_value_t = 5000)]
    pub mark_timeout_ms: u64,
    /// Seconds to wait after the last mark for replies and pushes in flight.
    #[arg(long, default_value_t = 5)]
    pub grace: u64,
    /// The target: p99 of mark → counts push at most this many milliseconds
    /// (with no error or timeout, and at least 95% of the offered rate).
    #[arg(long, default_value_t = 2.0)]
    pub max_p99_ms: f64,
    /// A process whose CPU time (utime + stime from /proc) during the
    /// measured trial is reported per mark, as `LABEL=PID` or `PID`;
    /// repeat for several (e.g. `a=123 --cpu-pid b=124 --cpu-pid redis=99`).
    #[arg(long = "cpu-pid")]
    pub cpu_pids: Vec<String>,
    /// Server API key for POST /v1/messages.
    #[arg(long, env = "HERALD__API__KEY", hide_env_values = true)]
    pub api_key: String,
    /// Overall limit for the whole run, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientOpts,
}

#[derive(Args, Debug)]
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
    /// Most connections one worker process holds (the process limit is 20,000 files).
    #[arg(long, default_value_t = 15_000)]
    pub per_worker: usize,
    /// First source address; worker w binds to this address + w.
    #[arg(long, default_value = "127.0.0.2")]
    pub source_ip_base: Ipv4Addr,
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
    /// A process whose CPU time (utime + stime from /proc) from the publish
    /// to the last delivery is reported per message, as `LABEL=PID` or
    /// `PID`; repeat for several.
    #[arg(long = "cpu-pid")]
    pub cpu_pids: Vec<String>,
    /// Server API key.
    #[arg(long, env = "HERALD__API__KEY", hide_env_values = true)]
    pub api_key: String,
    /// Overall limit for the whole run, in seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientOpts,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_mode_auto_is_lean_with_json_only() {
        use ClientMode::*;
        assert_eq!(Auto.resolve(CodecArg::Json).unwrap(), Lean);
        assert_eq!(Auto.resolve(CodecArg::Msgpack).unwrap(), Tungstenite);
        assert_eq!(Tungstenite.resolve(CodecArg::Json).unwrap(), Tungstenite);
        assert!(Lean.resolve(CodecArg::Msgpack).is_err());
    }

    #[test]
    fn ws_url_from_base() {
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws_url("http://127.0.0.1:8080/"), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws_url("https://h"), "wss://h/ws");
    }

    #[test]
    fn targets_as_base_urls() {
        for t in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "ws://127.0.0.1:8080",
            "ws://127.0.0.1:8080/ws",
            "ws://127.0.0.1:8080/ws/",
        ] {
            assert_eq!(base_url(t), "http://127.0.0.1:8080", "{t}");
            assert_eq!(ws_url(&base_url(t)), "ws://127.0.0.1:8080/ws", "{t}");
        }
    }

    #[test]
    fn mark_takes_comma_separated_targets() {
        let cli = Cli::try_parse_from([
            "herald-loadtest",
            "mark",
            "--targets",
            "ws://127.0.0.1:1,ws://127.0.0.1:2",
            "--api-key",
            "k",
            "--secret",
            "s",
            "--users",
            "20",
        ])
        .unwrap();
        let Command::Mark(a) = cli.command else {
            panic!("not mark")
        };
        assert_eq!(a.targets, ["ws://127.0.0.1:1", "ws://127.0.0.1:2"]);
        assert_eq!((a.users, a.rate, a.duration), (20, 1000.0, 10));
    }
}
