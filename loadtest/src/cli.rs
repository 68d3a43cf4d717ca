//! Command-line interface. Secrets come from the same environment variables
//! the gateway reads, so a script sets them once for both processes.
//!
//! This file names every scenario's arguments. What the scenarios and the
//! workers share (client settings, argument groups, target URLs) sits in
//! `cli/`, below them, so that none of them imports the file that imports
//! them.

use clap::{Parser, Subcommand};

use crate::scenario;

mod client_opts;
mod scenario_args;
mod targets;

pub use client_opts::{ClientMode, ClientOpts, CodecArg};
pub use scenario_args::{CommonArgs, CpuArgs, PoolArgs};
pub use targets::{base_url, ws_url};

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
