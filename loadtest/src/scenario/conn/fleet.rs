//! The coordinator's side of the `conn` and `fanout` workers: the connect
//! phase, and every worker's report of a broadcast round.

use std::time::Duration;

use anyhow::bail;
use futures_util::future::join_all;
use herald_harness::clock::unix_micros;
use herald_harness::latency::LatencyHist;
use tokio::time::Instant;

use super::pipe::{
    self, AddTarget, WorkerCommand, WorkerEvent, ROUND_FIELD, RUN_FIELD, SENT_FIELD,
};
use super::ConnArgs;
use crate::client::post_json;
use crate::harness::worker::{Pool, WorkerArgs};

pub type Fleet = Pool<WorkerCommand, WorkerEvent>;

/// The arguments of a `conn` coordinator's workers, before their slices.
pub fn worker_template(
    args: &ConnArgs,
    gateways: Vec<String>,
    run: u32,
    timeout: u64,
) -> WorkerArgs {
    let (ip, client) = (args.pool.source_ip_base, &args.common.client);
    WorkerArgs {
        worker_id: args.worker_id_base,
        ..WorkerArgs::template(gateways, run, ip, timeout, client)
    }
}

/// Tells every worker to connect at one moment and waits for each one's
/// `connected` event: what they connected, and the seconds from that
/// moment to the last welcome.
pub async fn connect_timed(
    fleet: &mut Fleet,
    deadline: Instant,
) -> anyhow::Result<(Connected, f64)> {
    let go_us = unix_micros();
    fleet.tell_all(&WorkerCommand::Connect).await?;
    let all: Vec<usize> = (0..fleet.len()).collect();
    let mut connected = Connected::default();
    for ev in fleet.gather_all(&all, deadline, connected_event).await? {
        connected.add(ev);
    }
    let secs = connected.last_connect_us.saturating_sub(go_us) as f64 / 1e6;
    let (ok, failed, retries) = (connected.ok, connected.failed, connected.retries);
    tracing::info!(
        ok,
        failed,
        retries,
        connect_secs = secs,
        "connect phase done"
    );
    Ok((connected, secs))
}

/// Waits (30 s at most) for the `hello` of workers `from`.
pub async fn hello(fleet: &mut Fleet, from: &[usize]) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    let hello = |ev| matches!(ev, WorkerEvent::Hello { .. }).then_some(());
    fleet.gather_all(from, until, hello).await.map(drop)
}

/// The workers' `connected` events added up.
#[derive(Default)]
pub struct Connected {
    pub ok: usize,
    pub failed: usize,
    /// Connections never attempted because the workers were halted.
    pub skipped: usize,
    pub retries: u64,
    /// The latest `last_connect_us` of all workers (0 if none).
    pub last_connect_us: u64,
    pub worker_rss_kib: Vec<u64>,
    /// Each reporting worker's `held`, in the order they were asked.
    pub held_per_worker: Vec<usize>,
    pub errors: Vec<String>,
    pub latency: LatencyHist,
}

impl Connected {
    pub fn add(&mut self, c: pipe::Connected) {
        self.latency.merge_buckets(&c.connect_latency);
        self.ok += c.ok;
        self.failed += c.failed;
        self.skipped += c.skipped;
        self.retries += c.retries;
        self.last_connect_us = self.last_connect_us.max(c.last_connect_us);
        self.worker_rss_kib.push(c.rss_kib);
        self.held_per_worker.push(c.held);
        for e in c.errors {
            if self.errors.len() < 10 && !self.errors.contains(&e) {
                self.errors.push(e);
            }
        }
    }
}

fn connected_event(ev: WorkerEvent) -> Option<pipe::Connected> {
    match ev {
        WorkerEvent::Connected(c) => Some(c),
        _ => None,
    }
}

/// Asks the workers to open more connections: `(worker, targets)` each,
/// all sent at one moment; waits for each one's `connected` event. Every
/// `check_every`, `halt_if` may give a reason to stop (a memory floor, a
/// time bound): the workers still connecting are told to `halt` (attempts
/// in flight finish, the rest are `skipped`), and the reason is returned
/// with what got connected.
pub async fn add_connections(
    fleet: &mut Fleet,
    adds: Vec<(usize, Vec<AddTarget>)>,
    deadline: Instant,
    check_every: Duration,
    mut halt_if: impl FnMut() -> Option<String>,
) -> anyhow::Result<(Connected, Option<String>)> {
    let asked: Vec<usize> = adds.iter().map(|(w, _)| *w).collect();
    for (w, targets) in adds {
        fleet.send(w, &WorkerCommand::Add { targets }).await?;
    }
    let mut got: Vec<Option<pipe::Connected>> = vec![None; fleet.len()];
    let mut halted: Option<String> = None;
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while let Some(&waiting) = asked.iter().find(|&&w| got[w].is_none()) {
        tokio::select! {
            heard = fleet.next(deadline) => match heard? {
                None => bail!("worker {waiting} did not answer in time"),
                Some((w, ev)) if asked.contains(&w) && got[w].is_none() => got[w] = connected_event(ev),
                // A late round report (a collect that crossed the add).
                Some(_) => {}
            },
            _ = tick.tick(), if halted.is_none() => {
                if let Some(reason) = halt_if() {
                    tracing::warn!("halting the connect phase: {reason}");
                    for &h in &asked {
                        fleet.send(h, &WorkerCommand::Halt).await?;
                    }
                    halted = Some(reason);
                }
            }
        }
    }
    let mut sum = Connected::default();
    for w in asked {
        sum.add(got[w].take().expect("every asked worker answered"));
    }
    Ok((sum, halted))
}

/// Every worker's report of one broadcast round, added up.
#[derive(Default)]
pub struct RoundTotals {
    pub received: usize,
    /// Connections live at the report (not counting the dropped ones).
    pub expected: usize,
    pub dropped: usize,
    pub duplicates: u64,
    /// The round's last delivery (unix µs).
    pub last_recv_us: u64,
    pub latency: LatencyHist,
}

/// Waits for the report of `round` from each worker of `from`; at `until`
/// asks those still silent for it (partial) and waits 10 s more.
pub async fn round(
    fleet: &mut Fleet,
    from: &[usize],
    round: u32,
    until: Instant,
) -> anyhow::Result<RoundTotals> {
    let pick = move |ev| match ev {
        WorkerEvent::Round(r) if r.round == round => Some(r),
        _ => None,
    };
    let mut got = fleet.gather(from, until, pick).await?;
    let silent: Vec<usize> = from.iter().copied().filter(|&w| got[w].is_none()).collect();
    for &w in &silent {
        fleet.send(w, &WorkerCommand::Collect { round }).await?;
    }
    let late_until = Instant::now() + Duration::from_secs(10);
    for (&w, r) in silent
        .iter()
        .zip(fleet.gather_all(&silent, late_until, pick).await?)
    {
        got[w] = Some(r);
    }
    let mut t = RoundTotals::default();
    for r in got.into_iter().flatten() {
        t.received += r.received;
        t.expected += r.expected;
        t.dropped += r.dropped;
        t.duplicates += r.duplicates;
        t.last_recv_us = t.last_recv_us.max(r.last_recv_us);
        t.latency.merge_buckets(&r.latencies);
    }
    Ok(t)
}

/// Posts one broadcast to everyone, stamped with the run, `round` and the
/// send time (what the workers record), to every gateway of `targets` at
/// once so that no node starts late. Returns the send time (unix µs).
pub async fn broadcast(
    http: &reqwest::Client,
    targets: &[String],
    api_key: &str,
    text: String,
    run: u32,
    round: u32,
) -> anyhow::Result<u64> {
    let sent_us = unix_micros();
    let body = serde_json::json!({
        "to": {"all": true},
        "category": "announcement",
        "body": text,
        "data": {RUN_FIELD: run, ROUND_FIELD: round, SENT_FIELD: sent_us},
    });
    let posts = targets
        .iter()
        .map(|t| post_json(http, t, "/v1/messages", api_key, &body));
    join_all(posts)
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    Ok(sent_us)
}
