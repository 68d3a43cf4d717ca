//! `herald-loadtest`: the project's own load generator.
//!
//! The scenarios measure the figures `docs/benchmarks.md` reports:
//! - `conn`: gateway RSS per idle authenticated connection, connect rate, and
//!   broadcast fan-out latency, with the connections spread over worker
//!   processes (one process may hold at most 20,000 files on this machine);
//! - `unicast`: end-to-end latency of private messages sent on one gateway
//!   node and received on another, at a fixed open-loop offered rate;
//! - `mark`: the notification center's `mark` on one node until the
//!   `counts` push reaches the same user's connection on another node;
//! - `fanout`: a publish to a topic with many subscribers, until its job is
//!   done and every connected subscriber has the message;
//! - `storm`: nodes killed under many resuming clients, until every client
//!   resumed on the others, and exactly-once of what was sent meanwhile;
//! - `soak`: a steady mix for a long time, gateway RSS and latency per window;
//! - `schedule`: 100,000 scheduled sends due in one second, then 10,000
//!   snoozes waking in one second, until all are delivered (woken), once.
//!
//! The hidden `worker` subcommand is this same binary run by the `conn`
//! and `fanout` coordinators, `storm-worker` by `storm`; they speak JSON
//! lines on stdin/stdout.

mod auth;
mod bounded;
mod cli;
mod client;
mod harness;
mod lean;
mod loopback;
mod pacing;
mod scenario;
mod stamp;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "herald_loadtest=info".into()),
        )
        .init();
    // Every scenario holds many sockets; the hard limit is the real bound.
    match herald_harness::process::raise_nofile_limit() {
        Ok(n) => tracing::debug!(nofile = n, "raised RLIMIT_NOFILE soft limit"),
        Err(e) => tracing::warn!("could not raise RLIMIT_NOFILE: {e}"),
    }
    let cli = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            cli::Command::Conn(args) => scenario::conn::run(args).await,
            cli::Command::Unicast(args) => scenario::unicast::run(args).await,
            cli::Command::Mark(args) => scenario::mark::run(args).await,
            cli::Command::Fanout(args) => scenario::fanout::run(args).await,
            cli::Command::Storm(args) => scenario::storm::run(args).await,
            cli::Command::Soak(args) => scenario::soak::run(args).await,
            cli::Command::Schedule(args) => scenario::schedule::run(args).await,
            cli::Command::StormWorker(args) => scenario::storm::run_worker(args).await,
            cli::Command::Worker(args) => scenario::conn::worker::run(args).await,
        }
    })
}
