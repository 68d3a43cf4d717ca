//! The `herald-loadtest` binary: its command line, run on a tokio runtime
//! (the scenarios are the library's, see `lib.rs`).

use clap::Parser;
use herald_loadtest::bounded::within;
use herald_loadtest::cli::{Cli, Command};
use herald_loadtest::scenario;

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
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            // These two check their --timeout deadline between phases.
            Command::Conn(args) => scenario::conn::run(args).await,
            Command::Unicast(args) => scenario::unicast::run(args).await,
            // These end at their limit whatever they wait for.
            Command::Mark(a) => within(a.common.limit(), scenario::mark::run(a)).await,
            Command::Fanout(a) => within(a.common.limit(), scenario::fanout::run(a)).await,
            Command::Storm(a) => within(a.fleet.common.limit(), scenario::storm::run(a)).await,
            Command::Scaleout(a) => {
                within(a.fleet.common.limit(), scenario::scaleout::run(a)).await
            }
            Command::Rolling(a) => within(a.fleet.common.limit(), scenario::rolling::run(a)).await,
            Command::Soak(a) => within(a.limit(), scenario::soak::run(a)).await,
            Command::Schedule(a) => within(a.common.limit(), scenario::schedule::run(a)).await,
            Command::StormWorker(args) => scenario::storm::worker::run(args).await,
            Command::Worker(args) => scenario::conn::worker::run(args).await,
        }
    })
}
