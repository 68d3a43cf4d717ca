//! The `herald-loadtest` binary: its command line, run on a tokio runtime
//! (the scenarios are the library's, see `lib.rs`).

use clap::Parser;
use herald_loadtest::{cli, scenario};

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
