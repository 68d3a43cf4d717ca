//! The `mark` command line.

use clap::Args;

use crate::cli::{CommonArgs, CpuArgs};

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("300")))]
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
    #[command(flatten)]
    pub cpu: CpuArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}
