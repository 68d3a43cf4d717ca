//! A worker process of the `conn` and `fanout` scenarios: holds up to
//! `--per-worker` connections, records broadcast deliveries (messages
//! stamped with the run, round and send time), and reports to the
//! coordinator.
//!
//! Why processes: one process may hold at most 20,000 open files on this
//! machine, so the connections are spread over several of them.
//!
//! The pipe protocol is JSON lines: the coordinator writes [`WorkerCommand`]s
//! to the worker's stdin, the worker writes [`WorkerEvent`]s to its stdout.
//! Logs go to stderr, which the coordinator passes through.
//!
//! A worker opens its `--count` connections on `connect`, and more on each
//! `add` (the stepwise `conn --steps` walk): every batch is answered by one
//! `connected` event of its own, and the connections of earlier batches stay
//! held and keep counting broadcasts.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use herald_harness::clock::unix_micros;
use herald_harness::latency::{Buckets, LatencyHist};
use herald_harness::process::own_rss_kib;
use herald_protocol::ServerFrame;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Semaphore};

use crate::cli::{ws_url, ClientMode, WorkerArgs};
use crate::client::Connector;
use crate::lean;

/// Coordinator → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum WorkerCommand {
    /// Open all connections now (every worker gets this at the same moment,
    /// so the connect phase is measured from one start).
    Connect,
    /// Open more connections now, `count` to each gateway of `targets`
    /// (users numbered on after this worker's earlier ones); answered by a
    /// `connected` event for these alone. The ones already held stay.
    Add { targets: Vec<AddTarget> },
    /// Start no further attempt of the current `connect` or `add`: those in
    /// flight finish, then it reports (the rest as `skipped`).
    Halt,
    /// Report round `round` now, with whatever arrived so far.
    Collect { round: u32 },
    /// Close everything and exit.
    Close,
}

/// `count` more connections to the gateway at base URL `gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddTarget {
    pub gateway: String,
    pub count: usize,
}

/// Worker → coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// The worker is running and waits for `connect`.
    Hello { worker_id: usize },
    /// Every connection of a `connect` or `add` either is up (welcomed) or
    /// gave up after its retries; the counts are this batch's.
    Connected {
        ok: usize,
        failed: usize,
        /// Connections of the batch never attempted (a `halt`).
        #[serde(default)]
        skipped: usize,
        /// Connections this worker holds now, over all batches (welcomed
        /// and not closed since).
        #[serde(default)]
        held: usize,
        /// Failed attempts that a later attempt made good.
        retries: u64,
        /// When the last connection was welcomed (unix µs).
        last_connect_us: u64,
        /// The worker's own RSS, to show the load generator stays lean.
        rss_kib: u64,
        /// A few distinct failure messages.
        errors: Vec<String>,
        /// Time from the start of a connection's first attempt to its
        /// welcome, for the connections that made it (µs).
        #[serde(default)]
        connect_latency: Buckets,
    },
    /// Deliveries of one broadcast round: sent when every live connection has
    /// it, or on `collect`.
    Round {
        round: u32,
        received: usize,
        expected: usize,
        /// Arrival of the round's last delivery here (unix µs).
        last_recv_us: u64,
        latencies: Buckets,
        /// Connections that have closed since they were welcomed.
        dropped: usize,
        /// Deliveries so far, over all rounds, of a round the connection
        /// had already received (a message pushed twice).
        #[serde(default)]
        duplicates: u64,
    },
}

/// Encodes one pipe line (without the newline).
pub fn encode_line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("pipe messages serialize")
}

/// Broadcasts sent by the `conn` coordinator carry these fields in `data`.
/// The run nonce tells them from an earlier run's broadcasts, which the
/// gateway may replay to a connection that never acknowledged them.
pub const RUN_FIELD: &str = "lt_run";
pub const ROUND_FIELD: &str = "lt_round";
pub const SENT_FIELD: &str = "lt_sent_us";

/// Deliveries of one round so far.
#[derive(Default)]
struct RoundAcc {
    received: usize,
    last_recv_us: u64,
    hist: LatencyHist,
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
}

/// The outcome of one `connect` or `add` so far.
#[derive(Default)]
struct Batch {
    ok: AtomicUsize,
    failed: AtomicUsize,
    retries: AtomicU64,
    last_connect_us: AtomicU64,
    errors: Mutex<Vec<String>>,
    connect_latency: Mutex<LatencyHist>,
}

impl Batch {
    fn note_error(&self, e: &anyhow::Error) {
        let msg = format!("{e:#}");
        let mut errors = self.errors.lock().expect("errors lock");
        if errors.len() < 5 && !errors.contains(&msg) {
            errors.push(msg);
        }
    }
}

#[derive(Default)]
struct Rounds {
    open: HashMap<u32, RoundAcc>,
    /// Rounds already reported; later deliveries of them are ignored.
    reported: HashSet<u32>,
}

impl Shared {
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
        let _ = self.events.send(WorkerEvent::Round {
            round,
            received: acc.received,
            expected: self.live(),
            last_recv_us: acc.last_recv_us,
            latencies: acc.hist.to_buckets(),
            dropped: self.dropped.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
        });
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

/// A connection that is up: a tungstenite stream held by its own task, or
/// a lean one for the reactors. One per connecting task, briefly: its size
/// does not matter.
#[allow(clippy::large_enum_variant)]
enum Held {
    Ws(crate::client::Ws),
    Lean(std::net::TcpStream, lean::Conn),
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<WorkerEvent>();
    // One writer owns stdout so lines never interleave.
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(ev) = events_rx.recv().await {
            let mut line = encode_line(&ev);
            line.push('\n');
            if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                break;
            }
        }
    });
    let shared = Arc::new(Shared::new(events_tx.clone()));
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
    let _ = events_tx.send(WorkerEvent::Hello {
        worker_id: args.worker_id,
    });

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let deadline = tokio::time::sleep(Duration::from_secs(args.timeout));
    tokio::pin!(deadline);
    let args = Arc::new(args);
    let urls: Arc<Vec<String>> = Arc::new(args.gateways.iter().map(|g| ws_url(g)).collect());
    // The next connection's user number: `connect` takes 0..count, each
    // `add` numbers on.
    let mut next_user = 0usize;
    loop {
        let line = tokio::select! {
            line = stdin.next_line() => line?,
            _ = &mut deadline => {
                tracing::warn!(worker = args.worker_id, "worker timed out; exiting");
                break;
            }
        };
        let Some(line) = line else { break }; // coordinator went away
        let cmd: WorkerCommand = match serde_json::from_str(&line) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("bad command line {line:?}: {e}");
                continue;
            }
        };
        match cmd {
            WorkerCommand::Connect => {
                // Connection i goes to gateway (first + i) mod gateways.
                let (first, count, n) = (args.first, args.count, urls.len());
                let plan = (0..count).map(move |i| ((first + i) % n, i));
                next_user = next_user.max(count);
                shared.halt.store(false, Ordering::Relaxed);
                tokio::spawn(connect_batch(
                    args.clone(),
                    shared.clone(),
                    reactors.clone(),
                    urls.clone(),
                    Box::new(plan),
                    count,
                ));
            }
            WorkerCommand::Add { targets } => {
                let count: usize = targets.iter().map(|t| t.count).sum();
                let batch_urls = Arc::new(targets.iter().map(|t| ws_url(&t.gateway)).collect());
                let first_user = next_user;
                next_user += count;
                let plan = targets
                    .into_iter()
                    .enumerate()
                    .flat_map(|(t, target)| std::iter::repeat_n(t, target.count))
                    .zip(first_user..);
                shared.halt.store(false, Ordering::Relaxed);
                tokio::spawn(connect_batch(
                    args.clone(),
                    shared.clone(),
                    reactors.clone(),
                    batch_urls,
                    Box::new(plan),
                    count,
                ));
            }
            WorkerCommand::Halt => shared.halt.store(true, Ordering::Relaxed),
            WorkerCommand::Collect { round } => shared.report(round),
            WorkerCommand::Close => break,
        }
    }
    drop(reactors); // stops the reactor threads, which hold `shared`
    drop(events_tx);
    drop(shared);
    // Let queued events out, but do not wait on connection tasks: exiting
    // closes every socket at once.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    std::process::exit(0);
}

/// Opens one batch of connections, `(gateway index into urls, user
/// number)` each, at most `concurrency` attempts at once, then reports
/// `connected` for the batch. A `halt` stops it starting more.
async fn connect_batch(
    args: Arc<WorkerArgs>,
    shared: Arc<Shared>,
    reactors: Option<Arc<lean::Reactors>>,
    urls: Arc<Vec<String>>,
    plan: Box<dyn Iterator<Item = (usize, usize)> + Send>,
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
        let user = crate::coordinator::worker_user(args.worker_id, user_no);
        let run = args.run;
        let (connector, urls, shared, batch, retries, reactors) = (
            connector.clone(),
            urls.clone(),
            shared.clone(),
            batch.clone(),
            args.client.retries,
            reactors.clone(),
        );
        tokio::spawn(async move {
            let url = &urls[url_idx];
            let started = std::time::Instant::now();
            let mut attempt = 0u32;
            let held = loop {
                let up = match reactors {
                    Some(_) => lean::connect(&connector, url, &user, run, &*shared)
                        .await
                        .map(|(stream, conn)| Held::Lean(stream, conn)),
                    None => connector
                        .connect(url, &user)
                        .await
                        .map(|(ws, _)| Held::Ws(ws)),
                };
                match up {
                    Ok(held) => break Some(held),
                    Err(e) => {
                        attempt += 1;
                        if attempt > retries {
                            batch.note_error(&e);
                            break None;
                        }
                        batch.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                    }
                }
            };
            // Counted before the permit goes: the batch is over once every
            // permit is back.
            let Some(held) = held else {
                batch.failed.fetch_add(1, Ordering::Relaxed);
                drop(permit);
                return;
            };
            batch
                .connect_latency
                .lock()
                .expect("latency lock")
                .record(started.elapsed().as_micros() as u64);
            shared.ok.fetch_add(1, Ordering::Relaxed);
            batch.ok.fetch_add(1, Ordering::Relaxed);
            batch
                .last_connect_us
                .fetch_max(unix_micros(), Ordering::Relaxed);
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
    let _all = sem
        .acquire_many(u32::try_from(concurrency).unwrap_or(u32::MAX))
        .await
        .expect("semaphore open");
    let errors = batch.errors.lock().expect("errors lock").clone();
    let _ = shared.events.send(WorkerEvent::Connected {
        ok: batch.ok.load(Ordering::Relaxed),
        failed: batch.failed.load(Ordering::Relaxed),
        skipped: count - started,
        held: shared.live(),
        retries: batch.retries.load(Ordering::Relaxed),
        last_connect_us: batch.last_connect_us.load(Ordering::Relaxed),
        rss_kib: own_rss_kib(),
        errors,
        connect_latency: batch
            .connect_latency
            .lock()
            .expect("latency lock")
            .to_buckets(),
    });
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

    #[test]
    fn commands_round_trip_as_json_lines() {
        for cmd in [
            WorkerCommand::Connect,
            WorkerCommand::Add {
                targets: vec![
                    AddTarget {
                        gateway: "http://127.0.0.1:1".into(),
                        count: 19_000,
                    },
                    AddTarget {
                        gateway: "http://127.0.0.1:2".into(),
                        count: 1,
                    },
                ],
            },
            WorkerCommand::Halt,
            WorkerCommand::Collect { round: 3 },
            WorkerCommand::Close,
        ] {
            let line = encode_line(&cmd);
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<WorkerCommand>(&line).unwrap(), cmd);
        }
        assert_eq!(
            encode_line(&WorkerCommand::Collect { round: 3 }),
            r#"{"cmd":"collect","round":3}"#
        );
        assert_eq!(encode_line(&WorkerCommand::Halt), r#"{"cmd":"halt"}"#);
    }

    #[test]
    fn a_connected_event_of_an_older_worker_still_parses() {
        let line = r#"{"event":"connected","ok":2,"failed":0,"retries":0,"last_connect_us":1,"rss_kib":5,"errors":[]}"#;
        match serde_json::from_str::<WorkerEvent>(line).unwrap() {
            WorkerEvent::Connected {
                ok, skipped, held, ..
            } => assert_eq!((ok, skipped, held), (2, 0, 0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_round_trip_as_json_lines() {
        let mut h = LatencyHist::new();
        h.record(1500);
        for ev in [
            WorkerEvent::Hello { worker_id: 1 },
            WorkerEvent::Connected {
                ok: 10,
                failed: 1,
                skipped: 3,
                held: 9,
                retries: 2,
                last_connect_us: 42,
                rss_kib: 9000,
                errors: vec!["refused\nwith newline".into()],
                connect_latency: h.to_buckets(),
            },
            WorkerEvent::Round {
                round: 0,
                received: 10,
                expected: 10,
                last_recv_us: 99,
                latencies: h.to_buckets(),
                dropped: 0,
                duplicates: 2,
            },
        ] {
            let line = encode_line(&ev);
            assert!(!line.contains('\n'), "one event per line: {line}");
            assert_eq!(serde_json::from_str::<WorkerEvent>(&line).unwrap(), ev);
        }
    }

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
            WorkerEvent::Round {
                round,
                received,
                expected,
                last_recv_us,
                latencies,
                ..
            } => {
                assert_eq!((round, received, expected, last_recv_us), (0, 3, 3, 3_000));
                assert_eq!(LatencyHist::from_buckets(&latencies).len(), 3);
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
            WorkerEvent::Round {
                received, expected, ..
            } => assert_eq!((received, expected), (1, 3)),
            other => panic!("{other:?}"),
        }
        // With one connection gone, two deliveries complete a round.
        s.dropped.store(1, Ordering::Relaxed);
        s.record(2, 10, 10);
        s.record(2, 10, 10);
        assert!(matches!(
            rx.try_recv().unwrap(),
            WorkerEvent::Round {
                round: 2,
                dropped: 1,
                ..
            }
        ));
    }
}
