//! A storm worker process: holds its share of the storm's (or the
//! scale-out's) clients (one [`session`] each: resume logic, ledger),
//! reports progress every 500 ms and, at the end, every client's episodes,
//! moves and what it received, and the delivery latency.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_harness::clock::unix_micros;
use herald_harness::latency::LatencyHist;
use herald_harness::ledger::Arrival;
use herald_harness::process::own_rss_kib;
use herald_harness::{Backoff, Ctx, Device, Observer};
use herald_protocol::{Message, Stream, Welcome};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::args::{storm_user, StormWorkerArgs};
use super::pipe::{ClientOutcome, Command, Episode, Event, Progress};
use super::traffic::UNTIMED;
use crate::client::{start_sessions, Connector};
use crate::endpoints::Endpoints;
use crate::harness::worker::{each_command, event_writer, exit};
use crate::scenario::conn::pipe::Connected;
use crate::stamp::Stamp;

/// How long the first connects may take before the worker reports
/// whatever it has.
const CONNECT_PHASE: Duration = Duration::from_secs(180);
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// One client's life as the storm measures it.
#[derive(Default)]
struct Track {
    first_synced_us: Option<u64>,
    episodes: Vec<Episode>,
    node: Option<String>,
    moves: u32,
}

impl Track {
    /// The episode still waiting for its resume, if any.
    fn open(&mut self) -> Option<&mut Episode> {
        self.episodes.last_mut().filter(|e| e.resumed_us.is_none())
    }
}

/// The worker's [`Observer`]: per-client tracks and the progress counters.
#[derive(Default)]
struct Tracker {
    run: u32,
    first: usize,
    tracks: Vec<Mutex<Track>>,
    synced_once: AtomicUsize,
    lost: AtomicU64,
    resumed: AtomicU64,
    clients_resumed: AtomicUsize,
    refused: AtomicU64,
    received: AtomicU64,
    moved: AtomicU64,
    /// Delivery latency of this run's stamped messages.
    latency: Mutex<LatencyHist>,
    /// Connect errors by message (at most [`MAX_ERRORS`] kinds).
    errors: Mutex<BTreeMap<String, u64>>,
}

/// Kinds of connect error kept; the rest are counted as `other`.
const MAX_ERRORS: usize = 10;

impl Tracker {
    fn new(run: u32, first: usize, count: usize) -> Self {
        Tracker {
            run,
            first,
            tracks: (0..count).map(|_| Mutex::default()).collect(),
            ..Tracker::default()
        }
    }

    fn track(&self, dev: &Device) -> std::sync::MutexGuard<'_, Track> {
        self.tracks[dev.index - self.first]
            .lock()
            .expect("track lock")
    }

    fn progress(&self, devices: &[Arc<Device>]) -> Progress {
        Progress {
            online: devices.iter().filter(|d| d.online()).count(),
            lost: self.lost.load(Ordering::Relaxed),
            resumed: self.resumed.load(Ordering::Relaxed),
            clients_resumed: self.clients_resumed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            moved: self.moved.load(Ordering::Relaxed),
        }
    }

    fn errors(&self) -> Vec<(String, u64)> {
        let errors = self.errors.lock().expect("errors lock");
        errors.iter().map(|(m, n)| (m.clone(), *n)).collect()
    }

    fn outcomes(&self, devices: &[Arc<Device>]) -> Vec<ClientOutcome> {
        devices
            .iter()
            .map(|dev| {
                let t = self.track(dev);
                ClientOutcome {
                    user: dev.index,
                    first_synced_us: t.first_synced_us,
                    episodes: t.episodes.clone(),
                    node: t.node.clone(),
                    received: dev.received(dev.index),
                    moves: t.moves,
                }
            })
            .collect()
    }
}

impl Observer for Tracker {
    fn welcomed(&self, dev: &Device, _node: usize, welcome: &Welcome) {
        let mut t = self.track(dev);
        t.node = Some(welcome.node_id.clone());
        if let Some(e) = t.open() {
            e.welcomed_us.get_or_insert_with(unix_micros);
        }
    }

    fn resumed(&self, dev: &Device) {
        let now = unix_micros();
        let mut t = self.track(dev);
        if t.first_synced_us.is_none() {
            t.first_synced_us = Some(now);
            self.synced_once.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(e) = t.open() else { return };
        e.resumed_us = Some(now);
        self.resumed.fetch_add(1, Ordering::Relaxed);
        if t.episodes.iter().filter(|e| e.resumed_us.is_some()).count() == 1 {
            self.clients_resumed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ended(&self, dev: &Device, _code: Option<u16>) {
        let mut t = self.track(dev);
        if t.first_synced_us.is_none() {
            return; // still in the connect phase
        }
        match t.open() {
            // Ended again before its resume: the episode goes on, and its
            // welcome will be the next one.
            Some(e) => e.welcomed_us = None,
            None => {
                t.episodes.push(Episode {
                    lost_us: unix_micros(),
                    ..Episode::default()
                });
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn refused(&self, dev: &Device, _node: usize, error: &anyhow::Error) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = self.track(dev).open() {
            e.refused += 1;
        }
        let mut msg: String = format!("{error:#}").chars().take(200).collect();
        let mut errors = self.errors.lock().expect("errors lock");
        if errors.len() >= MAX_ERRORS && !errors.contains_key(&msg) {
            msg = "other".into();
        }
        *errors.entry(msg).or_default() += 1;
    }

    fn reconnect(&self, dev: &Device, _after_ms: u64) {
        self.moved.fetch_add(1, Ordering::Relaxed);
        self.track(dev).moves += 1;
    }

    fn message(&self, _dev: &Device, m: &Message, arrival: Arrival) {
        if arrival != Arrival::First || m.stream != Stream::Inbox {
            return;
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        if let Some(st) = Stamp::read(m).filter(|s| s.run == self.run && s.trial != UNTIMED) {
            let took = unix_micros().saturating_sub(st.sched_us);
            self.latency.lock().expect("latency lock").record(took);
        }
    }
}

pub async fn run(args: StormWorkerArgs) -> anyhow::Result<()> {
    let (events, writer) = event_writer::<Event>();
    let w = &args.worker;
    let tracker = Arc::new(Tracker::new(w.run, w.first, w.count));
    let (stop_tx, stop_rx) = watch::channel(false);
    let connector = Connector::new(&w.client, Some(w.source_ip));
    let connector = match (args.service, args.readiness_ms) {
        (false, _) => connector,
        (true, 0) => connector.through_service(),
        (true, ms) => {
            let endpoints = Endpoints::watch(&w.gateways, Duration::from_millis(ms))?;
            connector.through_ready_service(endpoints)
        }
    };
    let backoff = Backoff::new(args.backoff_base_ms, args.backoff_cap_ms);
    let ctx = connector.sessions(&w.gateways, backoff, stop_rx, tracker.clone());
    let devices: Arc<Vec<Arc<Device>>> = Arc::new(
        (w.first..w.first + w.count)
            .map(|i| Device::new(i, storm_user(w.run, i)))
            .collect(),
    );
    let _ = events.send(Event::Hello);
    each_command(Duration::from_secs(w.timeout), |cmd| match cmd {
        Command::Connect => {
            let phase = connect_phase(&args, &devices, &ctx, &tracker, &events);
            tokio::spawn(phase);
            true
        }
        Command::Report => {
            let _ = events.send(Event::Report {
                clients: tracker.outcomes(&devices),
                errors: tracker.errors(),
                latency: tracker.latency.lock().expect("latency lock").to_buckets(),
            });
            true
        }
        Command::Close => false,
    })
    .await?;
    let _ = stop_tx.send(true);
    drop(events);
    exit(writer, Duration::from_secs(5)).await
}

/// Starts every client's session (at most `--concurrency` first connects
/// in flight), reports `connected` once all are synced (or the phase gave
/// up), then progress every 500 ms until the worker exits.
fn connect_phase(
    args: &StormWorkerArgs,
    devices: &Arc<Vec<Arc<Device>>>,
    ctx: &Arc<Ctx>,
    tracker: &Arc<Tracker>,
    events: &mpsc::UnboundedSender<Event>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (devices, ctx, tracker, events) = (
        devices.clone(),
        ctx.clone(),
        tracker.clone(),
        events.clone(),
    );
    let (homes, concurrency) = (args.homes, args.worker.client.concurrency);
    let progress_rounds = (args.worker.timeout * 1000 / PROGRESS_EVERY.as_millis() as u64).max(1);
    async move {
        let started = Instant::now();
        start_sessions(&devices, homes, &ctx, concurrency).await;
        let count = devices.len();
        while tracker.synced_once.load(Ordering::Relaxed) < count
            && started.elapsed() < CONNECT_PHASE
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = events.send(Event::Progress(tracker.progress(&devices)));
        }
        let ok = tracker.synced_once.load(Ordering::Relaxed);
        let errors = tracker.errors().into_iter().map(|e| e.0).collect();
        let _ = events.send(Event::Connected(Connected {
            ok,
            failed: count - ok,
            errors,
            rss_kib: own_rss_kib(),
            ..Connected::default()
        }));
        for _ in 0..progress_rounds {
            tokio::time::sleep(PROGRESS_EVERY).await;
            if events
                .send(Event::Progress(tracker.progress(&devices)))
                .is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_run_from_a_loss_to_the_resume_after_it() {
        let t = Tracker::new(0, 10, 2);
        let dev = Device::new(11, "u".into());
        let welcome: Welcome = serde_json::from_value(serde_json::json!({
            "conn_id": uuid::Uuid::nil(), "user_id": "u", "node_id": "n1",
            "heartbeat_ms": 1, "last_seq": 0, "last_all_seq": 0
        }))
        .unwrap();
        t.ended(&dev, None); // before the first sync: no episode
        t.welcomed(&dev, 0, &welcome);
        t.resumed(&dev);
        assert_eq!(t.synced_once.load(Ordering::Relaxed), 1);
        t.ended(&dev, None);
        t.welcomed(&dev, 1, &welcome);
        t.ended(&dev, Some(1011)); // ended again before its sync
        t.refused(&dev, 0, &anyhow::anyhow!("refused"));
        t.welcomed(&dev, 1, &welcome);
        t.resumed(&dev);
        let track = t.track(&dev);
        assert_eq!(track.episodes.len(), 1);
        let e = track.episodes[0];
        assert!(e.welcomed_us.is_some() && e.resumed_us.is_some());
        assert_eq!(e.refused, 1);
        assert_eq!(track.node.as_deref(), Some("n1"));
        drop(track);
        assert_eq!(
            (
                t.lost.load(Ordering::Relaxed),
                t.resumed.load(Ordering::Relaxed),
                t.clients_resumed.load(Ordering::Relaxed)
            ),
            (1, 1, 1)
        );
    }
}
