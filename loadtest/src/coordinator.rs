//! The coordinator side of the worker pipe: spawns worker processes (this
//! same binary, `worker` subcommand) and exchanges JSON lines with them.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use herald_harness::latency::LatencyHist;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use crate::cli::{ClientOpts, CodecArg};
use crate::worker::{encode_line, AddTarget, WorkerCommand, WorkerEvent};

/// What one worker is asked to do.
pub struct WorkerSpec<'a> {
    pub worker_id: usize,
    pub gateways: &'a [String],
    pub first: usize,
    pub count: usize,
    pub source_ip: std::net::Ipv4Addr,
    pub run: u32,
    pub timeout: Duration,
    pub client: &'a ClientOpts,
}

/// A running worker process.
pub struct WorkerHandle {
    pub id: usize,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl WorkerHandle {
    pub fn spawn(spec: &WorkerSpec<'_>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating own executable")?;
        let mut cmd = Command::new(exe);
        cmd.arg("worker")
            .args(["--worker-id", &spec.worker_id.to_string()])
            .args(["--first", &spec.first.to_string()])
            .args(["--count", &spec.count.to_string()])
            .args(["--source-ip", &spec.source_ip.to_string()])
            .args(["--run", &spec.run.to_string()])
            .args(["--timeout", &spec.timeout.as_secs().to_string()])
            .args(["--read-buffer", &spec.client.read_buffer.to_string()])
            .args([
                "--connect-timeout",
                &spec.client.connect_timeout.to_string(),
            ])
            .args(["--retries", &spec.client.retries.to_string()])
            .args(["--concurrency", &spec.client.concurrency.to_string()])
            .args(["--client-mode", spec.client.client_mode.as_str()])
            .args([
                "--codec",
                match spec.client.codec {
                    CodecArg::Json => "json",
                    CodecArg::Msgpack => "msgpack",
                },
            ]);
        for g in spec.gateways {
            cmd.args(["--gateway", g]);
        }
        // The secret travels in the environment, not on the command line.
        cmd.env("HERALD__AUTH__JWT_SECRET", &spec.client.secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawning worker")?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        Ok(WorkerHandle {
            id: spec.worker_id,
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The worker's process id (while it runs), to read its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn send(&mut self, cmd: &WorkerCommand) -> anyhow::Result<()> {
        let mut line = encode_line(cmd);
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .with_context(|| format!("writing to worker {}", self.id))?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// The next event, or an error at `deadline` or when the worker exits.
    pub async fn next_event(&mut self, deadline: Instant) -> anyhow::Result<WorkerEvent> {
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .map_err(|_| anyhow!("worker {} did not answer in time", self.id))??
                .ok_or_else(|| anyhow!("worker {} exited", self.id))?;
            match serde_json::from_str(&line) {
                Ok(ev) => return Ok(ev),
                Err(e) => tracing::warn!(worker = self.id, "ignoring line {line:?}: {e}"),
            }
        }
    }

    pub async fn expect_hello(&mut self, deadline: Instant) -> anyhow::Result<()> {
        match self.next_event(deadline).await? {
            WorkerEvent::Hello { .. } => Ok(()),
            other => bail!("worker {}: expected hello, got {other:?}", self.id),
        }
    }

    /// Waits for the report of `round`; at `deadline` asks for it (partial)
    /// and waits a little longer.
    pub async fn round_report(
        &mut self,
        round: u32,
        deadline: Instant,
    ) -> anyhow::Result<WorkerEvent> {
        let mut asked = false;
        let mut deadline = deadline;
        loop {
            match self.next_event(deadline).await {
                Ok(ev @ WorkerEvent::Round { round: r, .. }) if r == round => return Ok(ev),
                Ok(other) => tracing::debug!(worker = self.id, "skipping {other:?}"),
                Err(e) if asked => return Err(e),
                Err(_) => {
                    asked = true;
                    self.send(&WorkerCommand::Collect { round }).await?;
                    deadline = Instant::now() + Duration::from_secs(10);
                }
            }
        }
    }

    /// Asks the worker to exit and waits for it; kills it if it does not.
    pub async fn close(mut self) {
        let _ = self.send(&WorkerCommand::Close).await;
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(worker = self.id, "worker did not exit; killing it");
                let _ = self.child.kill().await;
            }
        }
    }
}

/// Spawns one worker per `(first, count)` slice of [`plan`]; worker `w`
/// binds its sockets to `source_ip_base + w`.
pub fn spawn_workers(
    slices: &[(usize, usize)],
    gateways: &[String],
    source_ip_base: std::net::Ipv4Addr,
    run: u32,
    timeout: Duration,
    client: &ClientOpts,
) -> anyhow::Result<Vec<WorkerHandle>> {
    spawn_workers_from(0, slices, gateways, source_ip_base, run, timeout, client)
}

/// [`spawn_workers`] with worker ids (and so user names) from `first_id`.
pub fn spawn_workers_from(
    first_id: usize,
    slices: &[(usize, usize)],
    gateways: &[String],
    source_ip_base: std::net::Ipv4Addr,
    run: u32,
    timeout: Duration,
    client: &ClientOpts,
) -> anyhow::Result<Vec<WorkerHandle>> {
    slices
        .iter()
        .enumerate()
        .map(|(w, &(first, count))| {
            WorkerHandle::spawn(&WorkerSpec {
                worker_id: first_id + w,
                gateways,
                first,
                count,
                source_ip: worker_source_ip(source_ip_base, w),
                run,
                timeout,
                client,
            })
        })
        .collect()
}

/// The source address of the `w`-th worker: `base + w`, or the unspecified
/// address for all when `base` is 0.0.0.0 (the kernel picks).
pub fn worker_source_ip(base: std::net::Ipv4Addr, w: usize) -> std::net::Ipv4Addr {
    if base.is_unspecified() {
        base
    } else {
        std::net::Ipv4Addr::from(u32::from(base) + w as u32)
    }
}

/// Each worker's RSS now, in KiB (0 for one that has exited).
pub fn workers_rss(workers: &[WorkerHandle]) -> Vec<u64> {
    let rss = |w: &WorkerHandle| {
        w.pid()
            .and_then(|p| herald_harness::process::rss_kib(p).ok())
    };
    workers.iter().map(|w| rss(w).unwrap_or(0)).collect()
}

/// The user name worker `worker` gives its connection `i`.
pub fn worker_user(worker: usize, i: usize) -> String {
    format!("lt-{worker}-{i}")
}

/// The workers' `connected` events added up.
#[derive(Default)]
pub struct Connected {
    pub ok: usize,
    pub failed: usize,
    /// Connections never attempted because the workers were halted.
    pub skipped: usize,
    /// Connections the reporting workers hold, over all their batches.
    pub held: usize,
    pub retries: u64,
    /// The latest `last_connect_us` of all workers (0 if none).
    pub last_connect_us: u64,
    pub worker_rss_kib: Vec<u64>,
    /// Each reporting worker's `held`, in the order they reported.
    pub held_per_worker: Vec<usize>,
    pub errors: Vec<String>,
    pub latency: LatencyHist,
}

/// Tells every worker to connect (all at one moment) and waits for each
/// one's `connected` event.
pub async fn connect_all(
    workers: &mut [WorkerHandle],
    deadline: Instant,
) -> anyhow::Result<Connected> {
    for w in workers.iter_mut() {
        w.send(&WorkerCommand::Connect).await?;
    }
    let mut all = Connected::default();
    for w in workers.iter_mut() {
        let ev = w.next_event(deadline).await?;
        all.add(w.id, ev)?;
    }
    Ok(all)
}

impl Connected {
    /// Adds worker `id`'s `connected` event.
    fn add(&mut self, id: usize, ev: WorkerEvent) -> anyhow::Result<()> {
        match ev {
            WorkerEvent::Connected {
                ok,
                failed,
                skipped,
                held,
                retries,
                last_connect_us,
                rss_kib,
                errors,
                connect_latency,
            } => {
                self.latency.merge_buckets(&connect_latency);
                self.ok += ok;
                self.failed += failed;
                self.skipped += skipped;
                self.held += held;
                self.retries += retries;
                self.last_connect_us = self.last_connect_us.max(last_connect_us);
                self.worker_rss_kib.push(rss_kib);
                self.held_per_worker.push(held);
                for e in errors {
                    if self.errors.len() < 10 && !self.errors.contains(&e) {
                        self.errors.push(e);
                    }
                }
                Ok(())
            }
            other => bail!("worker {id}: expected connected, got {other:?}"),
        }
    }
}

/// Asks the workers to open more connections: `(index into workers,
/// targets)` per worker, all sent at one moment; waits for each one's
/// `connected` event. Every `check_every`, `halt_if` may give a reason to
/// stop (a memory floor, a time bound): the workers still connecting are
/// told to `halt` (attempts in flight finish, the rest are `skipped`), and
/// the reason is returned with what got connected.
pub async fn add_connections(
    workers: &mut [WorkerHandle],
    adds: Vec<(usize, Vec<AddTarget>)>,
    deadline: Instant,
    check_every: Duration,
    mut halt_if: impl FnMut() -> Option<String>,
) -> anyhow::Result<(Connected, Option<String>)> {
    let asked: Vec<usize> = adds.iter().map(|(w, _)| *w).collect();
    for (w, targets) in adds {
        workers[w].send(&WorkerCommand::Add { targets }).await?;
    }
    let mut all = Connected::default();
    let mut halted: Option<String> = None;
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for &w in &asked {
        loop {
            let ev = tokio::select! {
                ev = workers[w].next_event(deadline) => ev?,
                _ = tick.tick(), if halted.is_none() => {
                    if let Some(reason) = halt_if() {
                        tracing::warn!("halting the connect phase: {reason}");
                        for &h in &asked {
                            workers[h].send(&WorkerCommand::Halt).await?;
                        }
                        halted = Some(reason);
                    }
                    continue;
                }
            };
            match ev {
                // A late round report (a collect that crossed the add).
                WorkerEvent::Round { .. } => continue,
                ev => {
                    all.add(workers[w].id, ev)?;
                    break;
                }
            }
        }
    }
    Ok((all, halted))
}

/// Splits `n` connections over workers of at most `per_worker` each, as
/// evenly as possible: returns (first index, count) per worker.
pub fn plan(n: usize, per_worker: usize) -> Vec<(usize, usize)> {
    let per_worker = per_worker.max(1);
    let workers = n.div_ceil(per_worker).max(1);
    let (base, extra) = (n / workers, n % workers);
    let mut first = 0;
    (0..workers)
        .map(|w| {
            let count = base + usize::from(w < extra);
            let slice = (first, count);
            first += count;
            slice
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_their_own_source_address_unless_unspecified() {
        let base = "127.0.0.2".parse().unwrap();
        assert_eq!(worker_source_ip(base, 0), base);
        assert_eq!(worker_source_ip(base, 52).to_string(), "127.0.0.54");
        let any = std::net::Ipv4Addr::UNSPECIFIED;
        assert_eq!(worker_source_ip(any, 7), any);
    }

    #[test]
    fn plan_spreads_evenly_within_the_per_worker_bound() {
        assert_eq!(plan(2000, 15_000), vec![(0, 2000)]);
        assert_eq!(plan(30_000, 15_000), vec![(0, 15_000), (15_000, 15_000)]);
        assert_eq!(
            plan(30_001, 15_000),
            vec![(0, 10_001), (10_001, 10_000), (20_001, 10_000)]
        );
        assert_eq!(plan(0, 10), vec![(0, 0)]);
        for (n, per) in [(1, 1), (99, 7), (100_000, 15_000)] {
            let p = plan(n, per);
            assert_eq!(p.iter().map(|s| s.1).sum::<usize>(), n);
            assert!(p.iter().all(|s| s.1 <= per));
        }
    }
}
