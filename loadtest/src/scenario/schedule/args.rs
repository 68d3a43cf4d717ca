//! The `schedule` command line.

use clap::Args;

use crate::cli::{CommonArgs, CpuArgs};

#[derive(Args, Debug)]
#[command(mut_arg("timeout", |a| a.default_value("900")))]
pub struct ScheduleArgs {
    /// Gateway base URL (http://host:port); repeat for several nodes.
    /// Requests are spread over them.
    #[arg(long = "gateway", required = true)]
    pub gateways: Vec<String>,
    /// The Redis the gateways share (`redis://host:port`): its schedule
    /// and wake-up indexes are watched (ZCARD) to see when every send is
    /// delivered and every snooze ended, without asking the gateways.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// The gateways' `redis.key_prefix`.
    #[arg(long, default_value = "herald")]
    pub key_prefix: String,
    /// Scheduled messages, all due in the same second.
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Their receivers (message i goes to receiver i mod this).
    #[arg(long, default_value_t = 10_000)]
    pub receivers: usize,
    /// Users who each snooze one message, all waking in the same second
    /// (0: no snooze phase).
    #[arg(long, default_value_t = 10_000)]
    pub snoozes: usize,
    /// Requests in flight at once while setting up (batches, marks, reads).
    #[arg(long, default_value_t = 32)]
    pub requests_in_flight: usize,
    /// Seconds from the start of a phase to the due second: enough to
    /// schedule (or snooze) everything before it.
    #[arg(long, default_value_t = 30)]
    pub lead_secs: u64,
    /// The target: every scheduled message delivered within this many
    /// seconds of its due time.
    #[arg(long, default_value_t = 10.0)]
    pub deliver_target_secs: f64,
    /// The target: every snooze ended, counts right, within this many
    /// seconds of its `until`.
    #[arg(long, default_value_t = 5.0)]
    pub wake_target_secs: f64,
    /// How often the indexes are read, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
    #[command(flatten)]
    pub cpu: CpuArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}
