//! A worker process of the `conn` and `fanout` scenarios (the hidden
//! `worker` subcommand): holds its connections, records broadcast
//! deliveries (messages stamped with the run, round and send time), and
//! reports to the coordinator ([`super::pipe`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use herald_harness::clock::unix_micros;
use herald_harness::latency::LatencyHist;
use herald_harness::process::own_rss_kib;
use herald_protocol::ServerFrame;
use tokio::sync::{mpsc, Semaphore};

use super::pipe::{
    worker_user, Connected, Round, WorkerCommand, WorkerEvent, ROUND_FIELD, RUN_FIELD, SENT_FIELD,
};
use crate::cli::{ws_url, ClientMode};
use crate::client::Connector;
use crate::harness::worker::{each_command, event_writer, exit, WorkerArgs};
use crate::lean;

/// Deliveries of one round so far.
#[derive(Default)]
struct RoundAcc {
    received: usize,
    last_recv_us: u64,
    hist: LatencyHist,
}

#[derive(Default)]
struct Rounds {
    open: HashMap<u32, RoundAcc>,
    /// Rounds already reported; later deliveries of them are ignored.
    reported: HashSet<u32>,
}

/// State shared by the worker's connection tasks.
struct Shared {
    events: mpsc::UnboundedSender<WorkerEvent>,
    /// Connections welcomed so far, over all batches.
    ok: AtomicUsize,
    dropped: AtomicUsize,
    duplicates: AtomicU64,
    /// Set by `halt`: the current batch starts no further attempt.
    halt: AtomicBool,
    rounds: Mutex<Rounds>,
}

impl Shared {
    fn new(events: mpsc::UnboundedSender<WorkerEvent>) -> Self {
        Shared {
            events,
            ok: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            duplicates: AtomicU64::new(0),
            halt: AtomicBool::new(false),
            rounds: Mutex::new(Rounds::default()),
        }
    }

    fn live(&self) -> usize {
        self.ok
            .load(Ordering::Relaxed)
            .saturating_sub(self.dropped.load(Ordering::Relaxed))
    }

    /// Records one delivery; reports the round once every live connection has it.
    fn record(&self, round: u32, latency_us: u64, now_us: u64) {
        let mut rounds = self.rounds.lock().expect("rounds lock");
        if rounds.reported.contains(&round) {
            return;
        }
        let acc = rounds.open.entry(round).or_default();
        acc.received += 1;
        acc.last_recv_us = acc.last_recv_us.max(now_us);
        acc.hist.record(latency_us);
        if acc.received >= self.live() {
            self.report_locked(&mut rounds, round);
        }
    }

    fn report(&self, round: u32) {
        let mut rounds = self.rounds.lock().expect("rounds lock");
        if !rounds.reported.contains(&round) {
            self.report_locked(&mut rounds, round);
        }
    }

    fn report_locked(&self, rounds: &mut Rounds, round: u32) {
        let acc = rounds.open.remove(&round).unwrap_or_default();
        rounds.reported.insert(round);
        let _ = self.events.send(WorkerEvent::Round(Round {
            round,
            received: acc.received,
            expected: self.live(),
            last_recv_us: acc.last_recv_us,
            latencies: acc.hist.to_buckets(),
            dropped: self.dropped.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
        }));
    }
}

impl lean::Sink for Shared {
    fn delivered(&self, round: u32, sent_us: u64) {
        let now = unix_micros();
        self.record(round, now.saturating_sub(sent_us), now);
    }

    fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    fn closed(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The outcome of one `connect` or `add` so far: its `connected` event,
/// and the connect latencies that go in it.
#[derive(Default)]
struct Batch(Mutex<(Connected, LatencyHist)>);

impl Batch {
    fn note(&self, f: impl FnOnce(&mut Connected, &mut LatencyHist)) {
        let mut batch = self.0.lock().expect("batch lock");
        let (connected, latency) = &mut *batch;
        f(connected, latency)
    }
}

/// A connection that is up: a tungstenite stream held by its own task, or
/// a lean one for the reactors. One per connecting task, briefly: its size
/// does not matter.
#[allow(clippy::large_enum_variant)]
enum Held {
    Ws(crate::client::Ws),
    Lean(std::net::TcpStream, lean::Conn),
}

/// One batch to open: `(gateway index into its URLs, user number)` each.
type Plan = Box<dyn Iterator<Item = (usize, usize)> + Send>;

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let (events, writer) = event_writer::<WorkerEvent>();
    let shared = Arc::new(Shared::new(events.clone()));
    // Lean mode: the reactors live as long as the worker (they hold the
    // connections).
    let reactors = match args.client.client_mode.resolve(args.client.codec)? {
        ClientMode::Lean => Some(Arc::new(lean::Reactors::per_core(
            args.count,
            args.run,
            shared.clone(),
        )?)),
        _ => None,
    };
    let _ = events.send(WorkerEvent::Hello {
        worker_id: args.worker_id,
    });
    let timeout = Duration::from_secs(args.timeout);
    let args = Arc::new(args);
    let urls: Arc<Vec<String>> = Arc::new(args.gateways.iter().map(|g| ws_url(g)).collect());
    // The next connection's user number: `connect` takes 0..count, each
    // `add` numbers on.
    let mut next_user = 0usize;
    each_command(timeout, |cmd| {
        let (batch_urls, plan, count): (Arc<Vec<String>>, Plan, usize) = match cmd {
            WorkerCommand::Connect => {
                // Connection i goes to gateway (first + i) mod gateways.
                let (first, count, n) = (args.first, args.count, urls.len());
                next_user = next_user.max(count);
                let plan = (0..count).map(move |i| ((first + i) % n, i));
                (urls.clone(), Box::new(plan), count)
            }
            WorkerCommand::Add { targets } => {
                let count: usize = targets.iter().map(|t| t.count).sum();
                let batch_urls = Arc::new(targets.iter().map(|t| ws_url(&t.gateway)).collect());
                let plan = (targets.into_iter().enumerate())
                    .flat_map(|(t, target)| std::iter::repeat_n(t, target.count))
                    .zip(next_user..);
                next_user += count;
                (batch_urls, Box::new(plan), count)
            }
            WorkerCommand::Halt => {
                shared.halt.store(true, Ordering::Relaxed);
                return true;
            }
            WorkerCommand::Collect { round } => {
                shared.report(round);
                return true;
            }
            WorkerCommand::Close => return false,
        };
        shared.halt.store(false, Ordering::Relaxed);
        let (args, shared, reactors) = (args.clone(), shared.clone(), reactors.clone());
        tokio::spawn(connect_batch(
            args, shared, reactors, batch_urls, plan, count,
        ));
        true
    })
    .await?;
    drop(reactors); // stops the reactor threads, which hold `shared`
    drop(events);
    drop(shared);
    exit(writer, Duration::from_secs(2)).await
}

/// Opens one batch of connections, at most `--concurrency` attempts at
/// once, then reports `connected` for the batch. A `halt` stops it
/// starting more and retrying those that failed.
async fn connect_batch(
    args: Arc<WorkerArgs>,
    shared: Arc<Shared>,
    reactors: Option<Arc<lean::Reactors>>,
    urls: Arc<Vec<String>>,
    plan: Plan,
    count: usize,
) {
    let connector = Arc::new(Connector::new(&args.client, Some(args.source_ip)));
    let concurrency = args.client.concurrency.max(1);
    let sem = Arc::new(Semaphore::new(concurrency));
    let batch = Arc::new(Batch::default());
    let mut started = 0usize;
    for (url_idx, user_no) in plan {
        if shared.halt.load(Ordering::Relaxed) {
            break;
        }
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        if shared.halt.load(Ordering::Relaxed) {
            break;
        }
        started += 1;
        let user = worker_user(args.worker_id, user_no);
        let (connector, urls, shared, batch) = (
            connector.clone(),
            urls.clone(),
            shared.clone(),
            batch.clone(),
        );
        let (run, retries, reactors) = (args.run, args.client.retries, reactors.clone());
        tokio::spawn(async move {
            let url = &urls[url_idx];
            let started = std::time::Instant::now();
            let mut attempt = 0u32;
            let held = loop {
                let up = match reactors {
                    Some(_) => lean::connect(&connector, url, &user, run, &*shared)
                        .await
                        .map(|(stream, conn)| Held::Lean(stream, conn)),
                    None => (connector.connect(url, &user).await).map(|(ws, _)| Held::Ws(ws)),
                };
                match up {
                    Ok(held) => break Some(held),
                    Err(e) => {
                        attempt += 1;
                        // Halted (a stall, the memory floor): no more
                        // tries, so the step ends now and says why.
                        if attempt > retries || shared.halt.load(Ordering::Relaxed) {
                            let msg = format!("{e:#}");
                            batch.note(|c, _| {
                                c.failed += 1;
                                if c.errors.len() < 5 && !c.errors.contains(&msg) {
                                    c.errors.push(msg);
                                }
                            });
                            break None;
                        }
                        batch.note(|c, _| c.retries += 1);
                        tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                    }
                }
            };
            // Counted before the permit goes: the batch is over once every
            // permit is back.
            let Some(held) = held else {
                drop(permit);
                return;
            };
            let took = started.elapsed().as_micros() as u64;
            shared.ok.fetch_add(1, Ordering::Relaxed);
            batch.note(|c, latency| {
                latency.record(took);
                c.ok += 1;
                c.last_connect_us = c.last_connect_us.max(unix_micros());
            });
            drop(permit);
            match (held, reactors) {
                (Held::Lean(stream, conn), Some(reactors)) => reactors.hand_over(stream, conn),
                (Held::Ws(ws), _) => {
                    hold(ws, run, &connector, &shared).await;
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
                (Held::Lean(..), None) => unreachable!("lean connections need reactors"),
            }
        });
    }
    // Every attempt in flight holds a permit until it is counted.
    let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
    let _all = sem.acquire_many(all).await.expect("semaphore open");
    let (mut connected, latency) = std::mem::take(&mut *batch.0.lock().expect("batch lock"));
    connected.skipped = count - started;
    connected.held = shared.live();
    connected.rss_kib = own_rss_kib();
    connected.connect_latency = latency.to_buckets();
    let _ = shared.events.send(WorkerEvent::Connected(connected));
}

/// Keeps one connection open, recording broadcast deliveries (see
/// [`lean::count`]), until the server closes it. Pings are answered by
/// tungstenite while reading.
async fn hold(mut ws: crate::client::Ws, run: u32, connector: &Connector, shared: &Shared) {
    let mut last_round: Option<u32> = None;
    while let Some(Ok(msg)) = ws.next().await {
        let Some(Ok(ServerFrame::Message(m))) = connector.decode(&msg) else {
            continue;
        };
        let field = |name: &str| m.data.get(name).and_then(|v| v.as_u64());
        if let (Some(r), Some(round), Some(sent)) =
            (field(RUN_FIELD), field(ROUND_FIELD), field(SENT_FIELD))
        {
            lean::count(&mut last_round, run, (r, round, sent), shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> (Shared, mpsc::UnboundedReceiver<WorkerEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = Shared::new(tx);
        s.ok.store(3, Ordering::Relaxed);
        (s, rx)
    }

    #[test]
    fn a_round_is_reported_once_when_every_live_connection_has_it() {
        let (s, mut rx) = shared();
        s.record(0, 100, 1_000);
        s.record(0, 300, 3_000);
        assert!(rx.try_recv().is_err(), "2 of 3: not yet");
        s.record(0, 200, 2_000);
        match rx.try_recv().unwrap() {
            WorkerEvent::Round(r) => {
                let (round, received, expected) = (r.round, r.received, r.expected);
                assert_eq!(
                    (round, received, expected, r.last_recv_us),
                    (0, 3, 3, 3_000)
                );
                assert_eq!(LatencyHist::from_buckets(&r.latencies).len(), 3);
            }
            other => panic!("{other:?}"),
        }
        // Late duplicates and a later collect add nothing.
        s.record(0, 100, 4_000);
        s.report(0);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn collect_reports_a_partial_round_and_drops_lower_the_bar() {
        let (s, mut rx) = shared();
        s.record(1, 100, 1_000);
        s.report(1);
        match rx.try_recv().unwrap() {
            WorkerEvent::Round(r) => assert_eq!((r.received, r.expected), (1, 3)),
            other => panic!("{other:?}"),
        }
        // With one connection gone, two deliveries complete a round.
        s.dropped.store(1, Ordering::Relaxed);
        s.record(2, 10, 10);
        s.record(2, 10, 10);
        assert!(matches!(
            rx.try_recv().unwrap(),
            WorkerEvent::Round(Round {
                round: 2,
                dropped: 1,
                ..
            })
        ));
    }
}
