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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use herald_protocol::ServerFrame;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::cli::{ws_url, ClientMode, WorkerArgs};
use crate::client::Connector;
use crate::lean;
use crate::stats::{Buckets, LatencyHist};
use crate::sys::{own_rss_kib, unix_micros};

/// Coordinator → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum WorkerCommand {
    /// Open all connections now (every worker gets this at the same moment,
    /// so the connect phase is measured from one start).
    Connect,
    /// Report round `round` now, with whatever arrived so far.
    Collect { round: u32 },
    /// Close everything and exit.
    Close,
}

/// Worker → coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// The worker is running and waits for `connect`.
    Hello { worker_id: usize },
    /// Every connection either is up (welcomed) or gave up after its retries.
    Connected {
        ok: usize,
        failed: usize,
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
    ok: AtomicUsize,
    failed: AtomicUsize,
    done: AtomicUsize,
    dropped: AtomicUsize,
    duplicates: AtomicU64,
    retries: AtomicU64,
    last_connect_us: AtomicU64,
    all_done: Notify,
    errors: Mutex<Vec<String>>,
    connect_latency: Mutex<LatencyHist>,
    rounds: Mutex<Rounds>,
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

    fn connect_finished(&self, count: usize) {
        if self.done.fetch_add(1, Ordering::AcqRel) + 1 == count {
            self.all_done.notify_one();
        }
    }

    fn note_error(&self, e: &anyhow::Error) {
        let msg = format!("{e:#}");
        let mut errors = self.errors.lock().expect("errors lock");
        if errors.len() < 5 && !errors.contains(&msg) {
            errors.push(msg);
        }
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
    let shared = Arc::new(Shared {
        events: events_tx.clone(),
        ok: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
        duplicates: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        last_connect_us: AtomicU64::new(0),
        all_done: Notify::new(),
        errors: Mutex::new(Vec::new()),
        connect_latency: Mutex::new(LatencyHist::new()),
        rounds: Mutex::new(Rounds::default()),
    });
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
                tokio::spawn(connect_all(args.clone(), shared.clone(), reactors.clone()));
            }
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

/// Opens this worker's connections, at most `concurrency` attempts at once,
/// then reports `connected`.
async fn connect_all(
    args: Arc<WorkerArgs>,
    shared: Arc<Shared>,
    reactors: Option<Arc<lean::Reactors>>,
) {
    let connector = Arc::new(Connector::new(&args.client, Some(args.source_ip)));
    let urls: Arc<Vec<String>> = Arc::new(args.gateways.iter().map(|g| ws_url(g)).collect());
    let sem = Arc::new(Semaphore::new(args.client.concurrency.max(1)));
    let count = args.count;
    for i in 0..count {
        let url_idx = (args.first + i) % urls.len();
        let user = crate::coordinator::worker_user(args.worker_id, i);
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let run = args.run;
        let (connector, urls, shared, retries, reactors) = (
            connector.clone(),
            urls.clone(),
            shared.clone(),
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
                            shared.note_error(&e);
                            break None;
                        }
                        shared.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                    }
                }
            };
            drop(permit);
            let Some(held) = held else {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                shared.connect_finished(count);
                return;
            };
            shared
                .connect_latency
                .lock()
                .expect("latency lock")
                .record(started.elapsed().as_micros() as u64);
            shared.ok.fetch_add(1, Ordering::Relaxed);
            shared
                .last_connect_us
                .fetch_max(unix_micros(), Ordering::Relaxed);
            shared.connect_finished(count);
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
    if count > 0 {
        // `notify_one` stores a permit, so a notification that fired before
        // this wait is not lost.
        shared.all_done.notified().await;
    }
    let errors = shared.errors.lock().expect("errors lock").clone();
    let _ = shared.events.send(WorkerEvent::Connected {
        ok: shared.ok.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        retries: shared.retries.load(Ordering::Relaxed),
        last_connect_us: shared.last_connect_us.load(Ordering::Relaxed),
        rss_kib: own_rss_kib(),
        errors,
        connect_latency: shared
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
        let s = Shared {
            events: tx,
            ok: AtomicUsize::new(3),
            failed: AtomicUsize::new(0),
            done: AtomicUsize::new(3),
            dropped: AtomicUsize::new(0),
            duplicates: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            last_connect_us: AtomicU64::new(0),
            all_done: Notify::new(),
            errors: Mutex::new(Vec::new()),
            connect_latency: Mutex::new(LatencyHist::new()),
            rounds: Mutex::new(Rounds::default()),
        };
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
