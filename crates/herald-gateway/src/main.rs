//! `herald`: run a gateway node, or mint a user token for development.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use herald_gateway::auth::Authenticator;
use herald_gateway::settings::LogFormat;
use herald_gateway::{app, Node, Settings};

/// mimalloc returns freed memory to the system and fragments less than
/// glibc's malloc under connect storms, where every handshake allocates and
/// frees HTTP buffers on many threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "herald", version, about = "Herald notification gateway")]
struct Cli {
    /// TOML settings file; environment variables HERALD__SECTION__KEY override it.
    #[arg(long, global = true, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a gateway node (the default).
    Serve,
    /// Print the effective settings (defaults, file, environment) as TOML,
    /// secrets masked.
    Config,
    /// Print the server API's OpenAPI 3.1 document (what `GET /openapi.json`
    /// serves; `docs/openapi.json` is a copy: `herald openapi > docs/openapi.json`).
    Openapi,
    /// Print a user token (HS256, signed with auth.jwt_secret).
    Token {
        #[arg(long)]
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 24 * 3600)]
        ttl: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Needs no settings: the document is the same for every node.
    if let Some(Command::Openapi) = cli.command {
        print!("{}", herald_gateway::openapi::json());
        return Ok(());
    }
    // A bad setting ends here: the error names the key and the value, and
    // the exit status is non-zero.
    let settings = Settings::load(cli.config.as_deref())?;
    init_logs(settings.log.format);
    runtime(settings.server.worker_threads)?.block_on(run(cli, settings))
}

/// The multi-threaded runtime, with `server.worker_threads` threads (0:
/// tokio's default, one per CPU the process may use).
fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if worker_threads > 0 {
        builder.worker_threads(worker_threads);
    }
    builder.enable_all().build()
}

async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings, cli.config).await,
        Command::Config => {
            print!("{}", toml::to_string_pretty(&settings.masked())?);
            Ok(())
        }
        Command::Openapi => unreachable!("answered before the settings are read"),
        Command::Token { user, ttl } => {
            herald_core::validate_user_id(&user)?;
            let auth = Authenticator::new(&settings.auth, None)?;
            println!("{}", auth.mint(&user, ttl)?);
            Ok(())
        }
    }
}

/// Logs to stderr: readable lines, or JSON objects (`log.format = "json"`)
/// for a collector. Level from `RUST_LOG`, default `info`.
fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

async fn serve(settings: Settings, config: Option<PathBuf>) -> anyhow::Result<()> {
    // Every connection is a file: take the hard limit, since runtimes often
    // start processes with a soft limit of 1024.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(%e, "could not raise the open files limit"),
    }
    let listener = settings
        .server
        .bind()
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", settings.server.listen))?;
    let node = Node::start(settings).await?;
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(node = %node.id, addr = %listener.local_addr()?, backend = ?node.settings.backend, workers, "herald listening");
    tokio::spawn(reload_on_hangup(node.clone(), config));
    app::serve(node.clone(), listener, shutdown_signal()).await?;
    // Let the closing connections leave presence before Redis goes away.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while node.metrics.open_connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    node.stop_backend().await;
    Ok(())
}

/// SIGHUP: read the settings again (file and environment) and take their
/// token keys and API keys, so keys rotate without a restart. Anything
/// else in the settings needs a restart; a bad file keeps the old keys.
async fn reload_on_hangup(node: std::sync::Arc<Node>, config: Option<PathBuf>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("no SIGHUP handler: keys reload only with a restart");
        return;
    };
    while hangup.recv().await.is_some() {
        let reloaded = Settings::load(config.as_deref()).and_then(|s| node.reload_credentials(&s));
        node.metrics.credentials_reloaded(reloaded.is_ok());
        match reloaded {
            Ok(()) => tracing::info!("SIGHUP: token keys and API keys reloaded"),
            Err(e) => tracing::error!("SIGHUP: keys not reloaded, the old ones stay: {e:#}"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
