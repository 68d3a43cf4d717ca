//! The coordinator's view of its storm workers (`storm`'s, `scaleout`'s
//! and `rolling`'s): spawning them, telling them all the same thing, and
//! folding their events (progress, connect results, final reports) while a
//! phase runs, with a progress line every second on stderr (the report on
//! stdout stays clean for the scripts).

use std::time::Duration;

use tokio::time::Instant;

use herald_harness::latency::LatencyHist;

use super::fleet_args::FleetArgs;
use super::pipe::{ClientOutcome, Command, Event, Progress};
use crate::harness::worker::{self, Pool, WorkerArgs};
use crate::scenario::conn::{self, fleet::Connected};

pub struct Fleet {
    pub pool: Pool<Command, Event>,
    progress: Vec<Progress>,
    connected: Vec<Option<conn::pipe::Connected>>,
    reports: Vec<Option<Vec<ClientOutcome>>>,
    errors: Vec<(String, u64)>,
    latency: LatencyHist,
}

/// What every worker of a fleet is told.
pub struct Plan<'a> {
    /// Every node's base URL, those clients start on first.
    pub nodes: Vec<String>,
    /// How many of `nodes` clients start on (client i on i mod this).
    pub homes: usize,
    /// Reconnect to any node, as through a Service.
    pub service: bool,
    /// The clients, their pool and backoff.
    pub args: &'a FleetArgs,
}

impl Fleet {
    /// One worker per `--per-worker` clients; worker `w` binds to
    /// `--source-ip-base` + w.
    pub fn spawn(plan: &Plan<'_>, run: u32) -> anyhow::Result<Fleet> {
        let args = plan.args;
        let (ip, timeout) = (args.pool.source_ip_base, args.common.timeout_secs() + 30);
        let nodes = plan.nodes.clone();
        let template = WorkerArgs::template(nodes, run, ip, timeout, &args.common.client);
        let mut extra = [
            ("--homes", plan.homes.to_string()),
            ("--backoff-base-ms", args.backoff_base_ms.to_string()),
            ("--backoff-cap-ms", args.backoff_cap_ms.to_string()),
        ]
        .map(|(flag, value)| [flag.to_owned(), value])
        .concat();
        if plan.service {
            extra.push("--service".into());
            extra.extend([
                "--readiness-ms".into(),
                args.service_readiness_ms.to_string(),
            ]);
        }
        let slices = worker::plan(args.clients, args.pool.per_worker);
        let mut pool = Pool::default();
        pool.spawn("storm-worker", &template, &slices, &extra)?;
        let n = pool.len();
        Ok(Fleet {
            pool,
            progress: vec![Progress::default(); n],
            connected: vec![None; n],
            reports: vec![None; n],
            errors: Vec::new(),
            latency: LatencyHist::new(),
        })
    }

    /// Every worker's progress added up.
    pub fn total(&self) -> Progress {
        let mut t = Progress::default();
        self.progress.iter().for_each(|p| t.add(p));
        t
    }

    /// Every worker's connect result once all are in.
    pub fn connected(&self) -> Option<Connected> {
        let mut all = Connected::default();
        for c in &self.connected {
            all.add(c.clone()?);
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

    /// The delivery latency of every report so far.
    pub fn latency(&self) -> &LatencyHist {
        &self.latency
    }

    fn fold(&mut self, w: usize, ev: Event) {
        match ev {
            Event::Hello => {}
            Event::Connected(c) => self.connected[w] = Some(c),
            Event::Progress(p) => self.progress[w] = p,
            Event::Report {
                clients,
                errors,
                latency,
            } => {
                self.reports[w] = Some(clients);
                self.latency.merge_buckets(&latency);
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
    /// printing `line(total progress)` every second. Fails when a worker
    /// is gone.
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
            if let Some((w, ev)) = self.pool.next(until.min(next_line)).await? {
                self.fold(w, ev);
            }
        }
    }

    /// Folds events for `secs` seconds whatever happens: a phase of
    /// traffic only (the baseline, the tail).
    pub async fn pump_for(
        &mut self,
        secs: u64,
        line: impl FnMut(&Progress) -> String,
    ) -> anyhow::Result<()> {
        let until = Instant::now() + Duration::from_secs(secs);
        self.pump(until, line, |_| false).await.map(drop)
    }

    /// Closes every worker (bounded; a stuck one is killed).
    pub async fn close(self) {
        self.pool.close(&Command::Close).await;
    }
}
