//! The coordinator's view of its storm workers: spawning them, telling
//! them all the same thing, and folding their events (progress, connect
//! results, final reports) while a phase runs, with a progress line every
//! second on stderr (the report on stdout stays clean for the scripts).

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::args::StormArgs;
use super::pipe::{ClientOutcome, Command, Event, Progress};
use crate::pipe::{client_args, secret_env, Worker};

/// What one worker said at the end of its connect phase.
#[derive(Debug, Clone, Default)]
pub struct Connected {
    pub ok: usize,
    pub failed: usize,
    pub errors: Vec<String>,
    /// The workers' RSS once connected (filled in by the coordinator).
    pub worker_rss_kib: Vec<u64>,
}

pub struct Fleet {
    workers: Vec<Worker<Command>>,
    events: mpsc::UnboundedReceiver<(usize, Event)>,
    progress: Vec<Progress>,
    hello: Vec<bool>,
    connected: Vec<Option<Connected>>,
    reports: Vec<Option<Vec<ClientOutcome>>>,
    errors: Vec<(String, u64)>,
}

impl Fleet {
    /// One worker per `(first, count)` slice; worker `w` binds to
    /// `--source-ip-base` + w. Node order: victims, then survivors.
    pub fn spawn(args: &StormArgs, run: u32, slices: &[(usize, usize)]) -> anyhow::Result<Fleet> {
        let (tx, events) = mpsc::unbounded_channel();
        let base = u32::from(args.source_ip_base);
        let mut workers = Vec::new();
        for (w, &(first, count)) in slices.iter().enumerate() {
            let mut argv: Vec<String> = vec!["storm-worker".into()];
            for g in args.victims.iter().chain(&args.survivors) {
                argv.extend(["--gateway".into(), g.clone()]);
            }
            let source_ip = std::net::Ipv4Addr::from(base + w as u32);
            for (k, v) in [
                ("--victims", args.victims.len().to_string()),
                ("--worker-id", w.to_string()),
                ("--first", first.to_string()),
                ("--count", count.to_string()),
                ("--run", run.to_string()),
                ("--source-ip", source_ip.to_string()),
                ("--backoff-base-ms", args.backoff_base_ms.to_string()),
                ("--backoff-cap-ms", args.backoff_cap_ms.to_string()),
                ("--timeout", (args.timeout + 30).to_string()),
            ] {
                argv.extend([k.to_owned(), v]);
            }
            argv.extend(client_args(&args.client));
            let worker = Worker::spawn(w, &argv, &secret_env(&args.client), tx.clone())
                .with_context(|| format!("starting storm worker {w}"))?;
            workers.push(worker);
        }
        let n = workers.len();
        Ok(Fleet {
            workers,
            events,
            progress: vec![Progress::default(); n],
            hello: vec![false; n],
            connected: vec![None; n],
            reports: vec![None; n],
            errors: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Each worker's RSS now, in KiB (0 for one that exited): what the
    /// load generator pays to hold the clients.
    pub fn rss_kib(&self) -> Vec<u64> {
        let rss = |w: &Worker<Command>| {
            w.pid()
                .and_then(|p| herald_harness::process::rss_kib(p).ok())
        };
        self.workers.iter().map(|w| rss(w).unwrap_or(0)).collect()
    }

    pub async fn tell_all(&mut self, cmd: &Command) -> anyhow::Result<()> {
        for w in &mut self.workers {
            w.send(cmd).await?;
        }
        Ok(())
    }

    /// Every worker's progress added up.
    pub fn total(&self) -> Progress {
        let mut t = Progress::default();
        self.progress.iter().for_each(|p| t.add(p));
        t
    }

    pub fn all_hello(&self) -> bool {
        self.hello.iter().all(|&h| h)
    }

    /// Every worker's connect result once all are in.
    pub fn connected(&self) -> Option<Connected> {
        let mut all = Connected::default();
        for c in &self.connected {
            let c = c.as_ref()?;
            all.ok += c.ok;
            all.failed += c.failed;
            all.errors.extend(c.errors.iter().cloned());
        }
        Some(all)
    }

    /// Every worker's final report once all are in.
    pub fn reports(&self) -> Option<Vec<ClientOutcome>> {
        let mut all = Vec::new();
        for r in &self.reports {
            all.extend(r.as_ref()?.iter().cloned());
        }
        Some(all)
    }

    /// The connect errors of every report so far (message, count).
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors.clone()
    }

    /// The workers' process ids (to charge their CPU).
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(|w| w.pid()).collect()
    }

    fn fold(&mut self, w: usize, ev: Event) {
        match ev {
            Event::Hello => self.hello[w] = true,
            Event::Connected { ok, failed, errors } => {
                self.connected[w] = Some(Connected {
                    ok,
                    failed,
                    errors,
                    worker_rss_kib: Vec::new(),
                })
            }
            Event::Progress(p) => self.progress[w] = p,
            Event::Report { clients, errors } => {
                self.reports[w] = Some(clients);
                for (msg, n) in errors {
                    match self.errors.iter_mut().find(|e| e.0 == msg) {
                        Some(e) => e.1 += n,
                        None => self.errors.push((msg, n)),
                    }
                }
            }
        }
    }

    /// Folds events until `done` holds (true) or `until` passes (false),
    /// printing `line(total progress)` every second. Fails when every
    /// worker is gone.
    pub async fn pump(
        &mut self,
        until: Instant,
        mut line: impl FnMut(&Progress) -> String,
        done: impl Fn(&Fleet) -> bool,
    ) -> anyhow::Result<bool> {
        let mut next_line = Instant::now() + Duration::from_secs(1);
        loop {
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(false);
            }
            if now >= next_line {
                eprintln!("{}", line(&self.total()));
                next_line = now + Duration::from_secs(1);
            }
            let wake = until.min(next_line);
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some((w, ev)) => self.fold(w, ev),
                    None => bail!("every storm worker is gone"),
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Closes every worker (bounded; a stuck one is killed).
    pub async fn close(self) {
        let closing = self.workers.into_iter().map(|w| w.close(&Command::Close));
        futures_util::future::join_all(closing).await;
    }
}
