//! Worker processes: this same binary started with a hidden subcommand,
//! driven over its stdin and reporting on its stdout, one JSON object per
//! line. Logs go to stderr, which the parent passes through.
//!
//! Why processes: one process may hold at most 20,000 open files on the
//! bench machine, so a scenario with more connections spreads them over
//! workers, each bound to its own source address (127.0.0.2, .3, …) so
//! that each has its own range of ephemeral ports.
//!
//! (`coordinator.rs` has the `conn`/`fanout` workers' own pipe; this one is
//! generic over the message types, for the newer scenarios.)

use std::marker::PhantomData;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::cli::{ClientOpts, CodecArg};

/// The parent's handle on one worker: its stdin for commands `C`. Its
/// events go to the channel given to [`Worker::spawn`].
pub struct Worker<C> {
    pub id: usize,
    child: Child,
    stdin: ChildStdin,
    _commands: PhantomData<fn(C)>,
}

impl<C: Serialize> Worker<C> {
    /// Starts `current_exe <args>` with `env` added; every line it prints
    /// is parsed as an `E` and sent to `events` tagged with `id` (lines that
    /// do not parse are logged and skipped).
    pub fn spawn<E: DeserializeOwned + Send + 'static>(
        id: usize,
        args: &[String],
        env: &[(&str, &str)],
        events: mpsc::UnboundedSender<(usize, E)>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating own executable")?;
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawning worker")?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str(&line) {
                    Ok(ev) => {
                        if events.send((id, ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(worker = id, "ignoring line: {e}"),
                }
            }
        });
        Ok(Worker {
            id,
            child,
            stdin,
            _commands: PhantomData,
        })
    }

    /// The worker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn send(&mut self, cmd: &C) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(cmd)?;
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .with_context(|| format!("writing to worker {}", self.id))?;
        Ok(self.stdin.flush().await?)
    }

    /// Sends `bye` and waits (bounded) for the worker to exit; kills it
    /// (our own child, by its handle) if it does not.
    pub async fn close(mut self, bye: &C) {
        let _ = self.send(bye).await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(worker = self.id, "worker did not exit; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// The worker side: a task that owns stdout and writes each event as one
/// line, so lines never interleave. Ends when every sender is dropped.
pub fn event_writer<E: Serialize + Send + 'static>(
) -> (mpsc::UnboundedSender<E>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<E>();
    let task = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(ev) = rx.recv().await {
            let mut line = serde_json::to_string(&ev).expect("events serialize");
            line.push('\n');
            if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                break;
            }
        }
    });
    (tx, task)
}

/// The worker side: commands from stdin, one per line; `None` when the
/// parent closed the pipe. Lines that do not parse are logged and skipped.
pub async fn next_command<C: DeserializeOwned>(
    lines: &mut tokio::io::Lines<BufReader<tokio::io::Stdin>>,
) -> anyhow::Result<Option<C>> {
    for _ in 0..1_000 {
        let Some(line) = lines.next_line().await? else {
            return Ok(None);
        };
        match serde_json::from_str(&line) {
            Ok(cmd) => return Ok(Some(cmd)),
            Err(e) => tracing::warn!("bad command line {line:?}: {e}"),
        }
    }
    anyhow::bail!("too many bad command lines")
}

/// The command-line form of `opts` for a worker (the secret travels in the
/// environment, see [`secret_env`]).
pub fn client_args(opts: &ClientOpts) -> Vec<String> {
    let codec = match opts.codec {
        CodecArg::Json => "json",
        CodecArg::Msgpack => "msgpack",
    };
    [
        ("--read-buffer", opts.read_buffer.to_string()),
        ("--connect-timeout", opts.connect_timeout.to_string()),
        ("--retries", opts.retries.to_string()),
        ("--concurrency", opts.concurrency.to_string()),
        ("--client-mode", opts.client_mode.as_str().to_owned()),
        ("--codec", codec.to_owned()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect()
}

/// The environment a worker reads the JWT secret from: never on a command
/// line, where `ps` would show it.
pub fn secret_env(opts: &ClientOpts) -> [(&'static str, &str); 1] {
    [("HERALD__AUTH__JWT_SECRET", opts.secret.as_str())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ClientMode;

    #[test]
    fn client_args_round_trip_through_the_cli() {
        let opts = ClientOpts {
            secret: "s".into(),
            codec: CodecArg::Json,
            read_buffer: 1024,
            connect_timeout: 7,
            retries: 2,
            concurrency: 99,
            client_mode: ClientMode::Tungstenite,
        };
        let args = client_args(&opts);
        assert!(
            !args.iter().any(|a| a == "s"),
            "no secret on the command line"
        );
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            c: ClientOpts,
        }
        let mut argv = vec!["x".to_owned(), "--secret".into(), "s".into()];
        argv.extend(args);
        let back = <P as clap::Parser>::try_parse_from(argv).unwrap().c;
        assert_eq!(
            (
                back.read_buffer,
                back.connect_timeout,
                back.retries,
                back.concurrency
            ),
            (1024, 7, 2, 99)
        );
        assert_eq!(back.client_mode, ClientMode::Tungstenite);
    }
}
