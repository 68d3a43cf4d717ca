//! Worker processes: this same binary started with a hidden subcommand,
//! driven over its stdin and reporting on its stdout, one JSON object per
//! line. Logs go to stderr, which the coordinator passes through.
//!
//! Why processes: one process may hold at most 20,000 open files on the
//! bench machine, so a scenario with more connections spreads them over
//! workers, each bound to its own source address (127.0.0.2, .3, …) so
//! that each has its own range of ephemeral ports.

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines, Stdin};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cli::ClientOpts;

/// What every worker is told on its command line: its slice of the run's
/// clients, where they connect from, and for how long.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Gateway base URLs, in the coordinator's order.
    #[arg(long = "gateway", required = true)]
    pub gateways: Vec<String>,
    /// This worker's number; its users are named after it.
    #[arg(long)]
    pub worker_id: usize,
    /// Global index of this worker's first client (picks the gateway).
    #[arg(long)]
    pub first: usize,
    /// Clients this worker opens.
    #[arg(long)]
    pub count: usize,
    /// The coordinator's run nonce; messages of other runs are ignored.
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

impl WorkerArgs {
    /// The arguments of a coordinator's workers, before their slices and
    /// numbers ([`Pool::spawn`] fills those in).
    pub fn template(
        gateways: Vec<String>,
        run: u32,
        source_ip_base: Ipv4Addr,
        timeout: u64,
        client: &ClientOpts,
    ) -> Self {
        WorkerArgs {
            gateways,
            worker_id: 0,
            first: 0,
            count: 0,
            run,
            source_ip: source_ip_base,
            timeout,
            client: client.clone(),
        }
    }

    /// The command line these arguments parse back from, but the secret:
    /// a worker reads it from its environment, where `ps` does not show it.
    pub fn to_argv(&self) -> Vec<String> {
        let c = &self.client;
        let name = |v: Option<clap::builder::PossibleValue>| {
            v.expect("every value has a name").get_name().to_owned()
        };
        let mut argv: Vec<String> = (self.gateways.iter())
            .flat_map(|g| ["--gateway".to_owned(), g.clone()])
            .collect();
        for (flag, value) in [
            ("--worker-id", self.worker_id.to_string()),
            ("--first", self.first.to_string()),
            ("--count", self.count.to_string()),
            ("--run", self.run.to_string()),
            ("--source-ip", self.source_ip.to_string()),
            ("--timeout", self.timeout.to_string()),
            ("--read-buffer", c.read_buffer.to_string()),
            ("--connect-timeout", c.connect_timeout.to_string()),
            ("--retries", c.retries.to_string()),
            ("--concurrency", c.concurrency.to_string()),
            ("--client-mode", name(c.client_mode.to_possible_value())),
            ("--codec", name(c.codec.to_possible_value())),
        ] {
            argv.extend([flag.to_owned(), value]);
        }
        argv
    }
}

/// Splits `n` clients over workers of at most `per_worker` each, as evenly
/// as possible: (first index, count) per worker.
pub fn plan(n: usize, per_worker: usize) -> Vec<(usize, usize)> {
    let workers = n.div_ceil(per_worker.max(1)).max(1);
    let (base, extra) = (n / workers, n % workers);
    let mut first = 0;
    (0..workers)
        .map(|w| {
            let count = base + usize::from(w < extra);
            first += count;
            (first - count, count)
        })
        .collect()
}

/// The source address of the `w`-th worker: `base + w`, or the unspecified
/// address for all when `base` is 0.0.0.0 (the kernel picks).
pub fn source_ip(base: Ipv4Addr, w: usize) -> Ipv4Addr {
    if base.is_unspecified() {
        base
    } else {
        Ipv4Addr::from(u32::from(base) + w as u32)
    }
}

/// One worker as its coordinator holds it.
struct Worker {
    child: Child,
    stdin: ChildStdin,
}

/// What a reader task passes on: a worker's event, or the end of its
/// output (it exited).
type Heard<E> = (usize, Option<E>);

/// A coordinator's workers, commands `C` in and events `E` out: each
/// worker's stdin, and one queue of what all of them said.
pub struct Pool<C, E> {
    workers: Vec<Worker>,
    tx: mpsc::UnboundedSender<Heard<E>>,
    rx: mpsc::UnboundedReceiver<Heard<E>>,
    _commands: std::marker::PhantomData<fn(C)>,
}

impl<C, E> Default for Pool<C, E> {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Pool {
            workers: Vec::new(),
            tx,
            rx,
            _commands: std::marker::PhantomData,
        }
    }
}

impl<C: Serialize, E: DeserializeOwned + Send + 'static> Pool<C, E> {
    /// Starts one worker per `(first, count)` slice: `<own exe> <subcommand>
    /// <args> <extra>`, with `template`'s arguments but its slice, its number
    /// (`template.worker_id` plus its index in the pool) and its source
    /// address (`template.source_ip` plus that index, see [`source_ip`]).
    pub fn spawn(
        &mut self,
        subcommand: &str,
        template: &WorkerArgs,
        slices: &[(usize, usize)],
        extra: &[String],
    ) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("locating own executable")?;
        for &(first, count) in slices {
            let id = self.workers.len();
            let args = WorkerArgs {
                worker_id: template.worker_id + id,
                first,
                count,
                source_ip: source_ip(template.source_ip, id),
                ..template.clone()
            };
            let mut child = Command::new(&exe)
                .arg(subcommand)
                .args(args.to_argv())
                .args(extra)
                .env("HERALD__AUTH__JWT_SECRET", &args.client.secret)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting worker {id}"))?;
            let stdin = child.stdin.take().expect("piped stdin");
            let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str(&line) {
                        Ok(ev) => {
                            if tx.send((id, Some(ev))).is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!(worker = id, "ignoring line {line:?}: {e}"),
                    }
                }
                let _ = tx.send((id, None));
            });
            self.workers.push(Worker { child, stdin });
        }
        Ok(())
    }

    /// How many workers were started (a pool is never asked while empty).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// The workers' process ids (to read their CPU time and memory).
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.workers.iter().map(|w| w.child.id()).collect()
    }

    /// Each worker's RSS now, in KiB (0 for one that has exited).
    pub fn rss_kib(&self) -> Vec<u64> {
        let rss = |pid: Option<u32>| pid.and_then(|p| herald_harness::process::rss_kib(p).ok());
        self.pids()
            .into_iter()
            .map(|p| rss(p).unwrap_or(0))
            .collect()
    }

    pub async fn send(&mut self, w: usize, cmd: &C) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(cmd)?;
        line.push('\n');
        let stdin = &mut self.workers[w].stdin;
        stdin
            .write_all(line.as_bytes())
            .await
            .with_context(|| format!("writing to worker {w}"))?;
        Ok(stdin.flush().await?)
    }

    pub async fn tell_all(&mut self, cmd: &C) -> anyhow::Result<()> {
        for w in 0..self.workers.len() {
            self.send(w, cmd).await?;
        }
        Ok(())
    }

    /// The next event of any worker, or `None` once `until` has passed.
    /// A worker that exits is an error: none does before it is told to.
    pub async fn next(&mut self, until: Instant) -> anyhow::Result<Option<(usize, E)>> {
        match tokio::time::timeout_at(until, self.rx.recv()).await {
            Err(_) => Ok(None),
            Ok(Some((w, Some(ev)))) => Ok(Some((w, ev))),
            Ok(Some((w, None))) => Err(anyhow!("worker {w} exited")),
            Ok(None) => unreachable!("the pool holds a sender"),
        }
    }

    /// Waits until each worker of `from` has said something `pick` takes
    /// (what else they say is skipped), or `until`: the answers by worker,
    /// `None` for those still silent.
    pub async fn gather<T>(
        &mut self,
        from: &[usize],
        until: Instant,
        mut pick: impl FnMut(E) -> Option<T>,
    ) -> anyhow::Result<Vec<Option<T>>> {
        let mut got: Vec<Option<T>> = (0..self.workers.len()).map(|_| None).collect();
        let mut missing = from.len();
        while missing > 0 {
            let Some((w, ev)) = self.next(until).await? else {
                break;
            };
            if got[w].is_none() && from.contains(&w) {
                got[w] = pick(ev);
                missing -= usize::from(got[w].is_some());
            }
        }
        Ok(got)
    }

    /// [`Pool::gather`] where every worker of `from` must answer by `until`:
    /// the answers in `from`'s order.
    pub async fn gather_all<T>(
        &mut self,
        from: &[usize],
        until: Instant,
        pick: impl FnMut(E) -> Option<T>,
    ) -> anyhow::Result<Vec<T>> {
        let mut got = self.gather(from, until, pick).await?;
        (from.iter())
            .map(|&w| {
                got[w]
                    .take()
                    .ok_or_else(|| anyhow!("worker {w} did not answer in time"))
            })
            .collect()
    }

    /// Tells every worker `bye` and waits (10 s at most) for it to exit;
    /// kills one that does not (our own child, by its handle).
    pub async fn close(self, bye: &C) {
        let line = serde_json::to_string(bye).expect("commands serialize") + "\n";
        let closing = self.workers.into_iter().enumerate().map(|(w, mut worker)| {
            let line = line.clone();
            async move {
                let _ = worker.stdin.write_all(line.as_bytes()).await;
                let _ = worker.stdin.flush().await;
                let wait = worker.child.wait();
                if tokio::time::timeout(Duration::from_secs(10), wait)
                    .await
                    .is_err()
                {
                    tracing::warn!(worker = w, "worker did not exit; killing it");
                    let _ = worker.child.kill().await;
                }
            }
        });
        futures_util::future::join_all(closing).await;
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
            let line = serde_json::to_string(&ev).expect("events serialize") + "\n";
            if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                break;
            }
        }
    });
    (tx, task)
}

/// The worker side: hands each command of stdin to `on` until it answers
/// false, the coordinator closes the pipe, or `timeout` passes.
pub async fn each_command<C: DeserializeOwned>(
    timeout: Duration,
    mut on: impl FnMut(C) -> bool,
) -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        let cmd = tokio::select! {
            cmd = next_command(&mut lines) => cmd?,
            _ = &mut deadline => {
                tracing::warn!("worker timed out; exiting");
                None
            }
        };
        if !cmd.is_some_and(&mut on) {
            return Ok(());
        }
    }
}

/// The worker side's end: lets the events queued so far out (`grace` at
/// most), then exits. Exiting closes every socket at once; waiting for
/// each connection's task would not.
pub async fn exit(writer: tokio::task::JoinHandle<()>, grace: Duration) -> ! {
    let _ = tokio::time::timeout(grace, writer).await;
    std::process::exit(0)
}

/// The next command; `None` when the coordinator closed the pipe. Lines
/// that do not parse are logged and skipped.
async fn next_command<C: DeserializeOwned>(
    lines: &mut Lines<BufReader<Stdin>>,
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
