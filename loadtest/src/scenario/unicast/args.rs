//! The `unicast` command line.

use clap::{Args, ValueEnum};

use crate::cli::{CommonArgs, CpuArgs};

/// How unicast messages enter the cluster.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Via {
    /// POST /v1/messages on the sending gateway (a backend's path).
    Http,
    /// `send` frames from WebSocket sender connections (a user's path).
    Ws,
}

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("600")))]
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
    #[command(flatten)]
    pub cpu: CpuArgs,
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
    /// Seconds of traffic at the first rate before the first measured
    /// trial, not reported: freshly started nodes and connections pay
    /// one-off costs (allocator growth, script loading, TCP windows) that
    /// showed up as a worse p99 in whichever trial ran first.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}
