//! The coordinator side of the worker pipe: spawns worker processes (this
//! same binary, `worker` subcommand) and exchanges JSON lines with them.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use crate::cli::{ClientOpts, CodecArg};
use crate::stats::LatencyHist;
use crate::worker::{encode_line, WorkerCommand, WorkerEvent};

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
    let base = u32::from(source_ip_base);
    slices
        .iter()
        .enumerate()
        .map(|(w, &(first, count))| {
            WorkerHandle::spawn(&WorkerSpec {
                worker_id: w,
                gateways,
                first,
                count,
                source_ip: std::net::Ipv4Addr::from(base + w as u32),
                run,
                timeout,
                client,
            })
        })
        .collect()
}

/// Each worker's RSS now, in KiB (0 for one that has exited).
pub fn workers_rss(workers: &[WorkerHandle]) -> Vec<u64> {
    let rss = |w: &WorkerHandle| w.pid().and_then(|p| crate::sys::rss_kib(p).ok());
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
    pub retries: u64,
    /// The latest `last_connect_us` of all workers (0 if none).
    pub last_connect_us: u64,
    pub worker_rss_kib: Vec<u64>,
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
        match w.next_event(deadline).await? {
            WorkerEvent::Connected {
                ok,
                failed,
                retries,
                last_connect_us,
                rss_kib,
                errors,
                connect_latency,
            } => {
                all.latency.merge_buckets(&connect_latency);
                all.ok += ok;
                all.failed += failed;
                all.retries += retries;
                all.last_connect_us = all.last_connect_us.max(last_connect_us);
                all.worker_rss_kib.push(rss_kib);
                all.errors.extend(errors);
            }
            other => bail!("worker {}: expected connected, got {other:?}", w.id),
        }
    }
    Ok(all)
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
