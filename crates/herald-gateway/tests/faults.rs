//! The fault catalogue of the hardening issue, with real processes: real
//! `herald` nodes ([`ProcessNode`]), real redis-server processes (standalone,
//! with AOF, behind a Sentinel with a replica, behind a [`TcpProxy`]) and
//! real WebSocket clients.
//!
//! The promise under test: "a message the server accepted (202 or ok reply)
//! must reach every device of its recipient exactly once, whatever fails".
//!
//! The checker: a [`Fleet`] of devices (users with one or two devices each,
//! a distinct `device` query per device) and a [`Sender`] that posts
//! `POST /v1/messages` at a steady, bounded rate and records the
//! `stored[].seq` and `id` of every 202. Each device acknowledges what it
//! gets (`ack`), and after any close reconnects with exponential backoff and
//! full jitter (trying the next node when one refuses), then `sync`s from
//! the highest seq it has (docs/protocol.md). A device dedups by seq, as
//! the protocol asks; the checker counts, per device:
//!
//! - **lost**: an accepted message (by id) that never arrived;
//! - **doubled**: a seq written twice on one connection when no `sync`
//!   asked for it (the per-connection exactly-once of `WrittenSeq`);
//! - **gaps**: a seq arriving past the next one expected (a half-written
//!   message, or a delivery that skipped a seq);
//! - **seq reused**: one seq arriving with two different message ids;
//! - and, as information, **redelivered** (a new connection starting below
//!   what the device had, because its acknowledged cursor lagged: recognised
//!   by seq, the protocol's resume rule) and **resent by sync**.
//!
//! "Exactly once" is then: lost, doubled, gaps and seq reused all 0.
//!
//! The tests run one at a time (they start many processes and measure
//! memory and Redis load; on a small machine, running them together would
//! only measure each other), each on its own Redis; the file takes about
//! 100 s on two cores. Numbers from the runs are in docs/faults.md; each
//! test prints its own (`--nocapture`). Two tests are ignored: they fail,
//! each on a bug described in its `ignore` reason and in docs/faults.md.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::process::{token, ProcessNode};
use common::API_KEY;
use futures_util::{SinkExt, StreamExt};
use herald_protocol::{ClientFrame, Codec, Message, ServerFrame, Stream};
use herald_testing::{RedisSentinel, RedisServer, TcpProxy, SENTINEL_SERVICE};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Running the tests one at a time

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `test` on its own two-thread runtime, after any other test of this
/// file has finished.
fn run(test: impl Future<Output = ()>) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
    eprintln!("test took {:.1} s", started.elapsed().as_secs_f64());
}

/// Polls `ok` every 20 ms until it holds; returns how long that took.
/// Panics after `within` (or 10,000 polls).
async fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    for _ in 0..10_000 {
        if ok() {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within 10,000 polls");
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// A random duration in `[0, max]` (full jitter).
fn random_below(max: Duration) -> Duration {
    let micros = max.as_micros() as u64;
    Duration::from_micros((Uuid::new_v4().as_u128() % (micros as u128 + 1)) as u64)
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// ---------------------------------------------------------------------------
// Devices: WebSocket clients that record every seq they get

/// How long a device waits before connecting again: after `n` failed
/// attempts in a row (1 after a close), a random time up to
/// `min(cap, base * 2^(n-1))` (full jitter), or exactly that without jitter.
struct Backoff {
    base: Duration,
    cap: Duration,
    jitter: AtomicBool,
}

impl Backoff {
    fn new(base_ms: u64, cap_ms: u64) -> Arc<Backoff> {
        Arc::new(Backoff {
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(cap_ms),
            jitter: AtomicBool::new(true),
        })
    }

    fn delay(&self, n: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1 << n.saturating_sub(1).min(16))
            .min(self.cap);
        if self.jitter.load(Ordering::Relaxed) {
            random_below(ceiling)
        } else {
            ceiling
        }
    }
}

/// What one device saw, over all its connections.
#[derive(Default)]
struct DeviceState {
    /// Frames per message id.
    by_id: HashMap<Uuid, u32>,
    /// The id each seq first came with.
    by_seq: HashMap<u64, Uuid>,
    /// The highest seq received.
    high: u64,
    /// (seq expected next, seq that came instead).
    gaps: Vec<(u64, u64)>,
    /// A seq twice on one connection that no `sync` asked for.
    doubled: u32,
    /// A seq twice on one connection, within a `sync`'s replay.
    resent_by_sync: u32,
    /// A seq an earlier connection had delivered, on a new connection.
    redelivered: u32,
    /// Seqs that came with two different ids (without a `reset` between).
    seq_reused: Vec<u64>,
    /// `reset` frames: the store went back (a lossy failover).
    resets: u32,
    /// Messages this device had, written again after a `reset` (it
    /// recognises them by id, as the protocol says).
    resent_after_reset: u32,
    /// Connect attempts (start times), successful or not.
    attempts: Vec<Instant>,
    /// One per connection: when the welcome came, from which node.
    welcomes: Vec<(Instant, String)>,
    /// One per ended connection: when, and the close code (None: the
    /// connection just ended).
    closes: Vec<(Instant, Option<u16>)>,
    connected: bool,
}

struct Device {
    user: String,
    device: String,
    /// A small socket receive buffer (4 KiB), so a device that stops
    /// reading makes the server's writes block soon.
    small_buffer: bool,
    /// While true the device does not read its socket at all.
    hold: watch::Sender<bool>,
    /// While true the device writes nothing (no `sync`, no `ack`); set
    /// false when a connection ends.
    silent: AtomicBool,
    state: Mutex<DeviceState>,
}

/// How a device of a [`Fleet`] behaves.
#[derive(Default, Clone, Copy)]
struct Setup {
    /// Starts held (not reading at all, not even the welcome), with a small
    /// receive buffer (4 KiB), so the server's writes block soon.
    held: bool,
    /// Writes nothing on its first connection.
    silent_until_closed: bool,
}

/// The sync request's rid.
const RESUME: &str = "resume";

/// One connection's view, for telling a doubled seq from a requested one.
#[derive(Default)]
struct ConnView {
    seen: HashSet<u64>,
    /// `since` of the `sync` this connection sent, and whether its reply
    /// came.
    sync: Option<(u64, bool)>,
    /// A `reset` came on this connection.
    reset: bool,
}

impl Device {
    fn state(&self) -> MutexGuard<'_, DeviceState> {
        self.state.lock().unwrap()
    }

    fn record(&self, m: &Message, conn: &mut ConnView) {
        let mut st = self.state();
        let seq = m.seq;
        let frames = {
            let n = st.by_id.entry(m.id).or_default();
            *n += 1;
            *n
        };
        match st.by_seq.get(&seq) {
            Some(id) if *id != m.id => st.seq_reused.push(seq),
            Some(_) => {}
            None => {
                st.by_seq.insert(seq, m.id);
            }
        }
        if !conn.seen.insert(seq) {
            if matches!(conn.sync, Some((since, false)) if seq > since) {
                st.resent_by_sync += 1;
            } else {
                st.doubled += 1;
            }
        } else if frames > 1 && conn.reset {
            st.resent_after_reset += 1;
        } else if frames > 1 {
            st.redelivered += 1;
        }
        if seq > st.high + 1 {
            let expected = st.high + 1;
            st.gaps.push((expected, seq));
        }
        st.high = st.high.max(seq);
    }

    /// The store went back to `seq`: seqs above it may come again with
    /// other messages.
    fn reset(&self, seq: u64, conn: &mut ConnView) {
        let mut st = self.state();
        st.resets += 1;
        st.high = seq;
        st.by_seq.retain(|s, _| *s <= seq);
        conn.seen.retain(|s| *s <= seq);
        conn.reset = true;
    }

    /// The node of the current connection, if connected.
    fn node(&self) -> Option<String> {
        let st = self.state();
        st.connected
            .then(|| st.welcomes.last().map(|(_, n)| n.clone()))
            .flatten()
    }

    /// Ids of `accepted` this device has not received.
    fn missing(&self, accepted: &[Accepted]) -> Vec<Accepted> {
        let st = self.state();
        accepted
            .iter()
            .filter(|a| !st.by_id.contains_key(&a.id))
            .cloned()
            .collect()
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection silent this long is taken for dead (the server pings every
/// `ws.heartbeat_ms`, 25 s by default).
const SILENCE: Duration = Duration::from_secs(60);

async fn open_ws(addr: SocketAddr, token: &str, device: &str, small_buffer: bool) -> Option<Ws> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    if small_buffer {
        socket.set_recv_buffer_size(4096).ok()?;
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .ok()?
        .ok()?;
    let url = format!("ws://{addr}/ws?token={token}&device={device}");
    let (ws, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::client_async(url, stream),
    )
    .await
    .ok()?
    .ok()?;
    Some(ws)
}

enum Ended {
    Stopped,
    Closed(Option<u16>),
}

async fn send_frame(ws: &mut Ws, frame: &ClientFrame) -> bool {
    let bytes = Codec::Json.encode_client(frame);
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    ws.send(WsMessage::Text(text.into())).await.is_ok()
}

/// Reads one connection until it ends or the fleet stops.
async fn serve(dev: &Device, ws: &mut Ws, stop: &mut watch::Receiver<bool>) -> Ended {
    let mut hold = dev.hold.subscribe();
    let mut conn = ConnView::default();
    let mut synced = false;
    for _ in 0..10_000_000u32 {
        while *hold.borrow_and_update() {
            tokio::select! {
                _ = stop.changed() => return Ended::Stopped,
                changed = hold.changed() => if changed.is_err() { break },
            }
        }
        let next = tokio::select! {
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return Ended::Stopped;
            }
            _ = hold.changed() => continue,
            next = tokio::time::timeout(SILENCE, ws.next()) => next,
        };
        let frame = match next {
            Ok(Some(Ok(frame))) => frame,
            _ => return Ended::Closed(None),
        };
        let bytes = match frame {
            WsMessage::Text(t) => t,
            WsMessage::Close(c) => return Ended::Closed(c.map(|c| u16::from(c.code))),
            _ => continue,
        };
        let Ok(frame) = Codec::Json.decode_server(bytes.as_bytes()) else {
            panic!("undecodable server frame {bytes}");
        };
        match frame {
            ServerFrame::Welcome(w) => {
                let mut st = dev.state();
                st.connected = true;
                st.welcomes.push((Instant::now(), w.node_id));
            }
            // The first counts frame ends the welcome's backlog: resume
            // from the highest seq this device has.
            ServerFrame::Counts(_) if !synced && !dev.silent.load(Ordering::Relaxed) => {
                synced = true;
                let (since, since_id) = {
                    let st = dev.state();
                    (st.high, st.by_seq.get(&st.high).copied())
                };
                conn.sync = Some((since, false));
                let sync = ClientFrame::Sync {
                    rid: RESUME.into(),
                    since,
                    since_all: None,
                    since_id,
                    since_all_id: None,
                };
                if !send_frame(ws, &sync).await {
                    return Ended::Closed(None);
                }
            }
            ServerFrame::Message(m) if m.stream == Stream::Inbox => {
                dev.record(&m, &mut conn);
                if dev.silent.load(Ordering::Relaxed) {
                    continue;
                }
                let ack = ClientFrame::Ack {
                    seq: m.seq,
                    stream: Stream::Inbox,
                };
                if !send_frame(ws, &ack).await {
                    return Ended::Closed(None);
                }
            }
            ServerFrame::Reset {
                stream: Stream::Inbox,
                seq,
            } => dev.reset(seq, &mut conn),
            ServerFrame::Reply(r) if r.rid == Some(RESUME.into()) => {
                assert!(r.ok, "sync refused: {r:?}");
                if let Some(sync) = &mut conn.sync {
                    sync.1 = true;
                }
            }
            _ => {}
        }
    }
    Ended::Closed(None)
}

/// One device's life: connect (to its home node first), read, and after a
/// close wait the backoff and connect again, to the same node first; after
/// a failed attempt, to a node that has not refused since the last
/// connection, at random, after a backoff that grows with the refusals.
async fn run_device(
    dev: Arc<Device>,
    addrs: Vec<SocketAddr>,
    home: usize,
    backoff: Arc<Backoff>,
    mut stop: watch::Receiver<bool>,
) {
    let token = token(&dev.user);
    let mut node = home % addrs.len();
    // Nodes that refused since the last connection.
    let mut refused: HashSet<usize> = HashSet::new();
    let mut failures = 0u32;
    for _ in 0..1_000 {
        if *stop.borrow() {
            return;
        }
        dev.state().attempts.push(Instant::now());
        let wait = match open_ws(addrs[node], &token, &dev.device, dev.small_buffer).await {
            Some(mut ws) => {
                refused.clear();
                failures = 0;
                let ended = serve(&dev, &mut ws, &mut stop).await;
                dev.silent.store(false, Ordering::Relaxed);
                let mut st = dev.state();
                st.connected = false;
                match ended {
                    Ended::Stopped => return,
                    Ended::Closed(code) => st.closes.push((Instant::now(), code)),
                }
                backoff.delay(1)
            }
            None => {
                // Next, a node that did not refuse yet, at random.
                refused.insert(node);
                if refused.len() == addrs.len() {
                    refused.clear();
                }
                let left: Vec<usize> = (0..addrs.len()).filter(|n| !refused.contains(n)).collect();
                node = left[(Uuid::new_v4().as_u128() % left.len() as u128) as usize];
                failures += 1;
                backoff.delay(failures)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Which devices to run: (user, device name, home node index).
fn device_specs(users: &[String], nodes: usize) -> Vec<(String, String, usize)> {
    let mut specs = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let devices: &[&str] = if i % 2 == 0 {
            &["phone", "laptop"]
        } else {
            &["phone"]
        };
        for device in devices {
            let home = specs.len() % nodes;
            specs.push((user.clone(), (*device).to_owned(), home));
        }
    }
    specs
}

struct Fleet {
    devices: Vec<Arc<Device>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Fleet {
    fn start(
        specs: Vec<(String, String, usize)>,
        addrs: &[SocketAddr],
        backoff: Arc<Backoff>,
    ) -> Fleet {
        Self::start_with(specs, addrs, backoff, |_| Setup::default())
    }

    /// `setup(user)` says how each device behaves.
    fn start_with(
        specs: Vec<(String, String, usize)>,
        addrs: &[SocketAddr],
        backoff: Arc<Backoff>,
        setup: impl Fn(&str) -> Setup,
    ) -> Fleet {
        let (stop, _) = watch::channel(false);
        let mut devices = Vec::new();
        let mut tasks = Vec::new();
        for (user, device, home) in specs {
            let setup = setup(&user);
            let dev = Arc::new(Device {
                small_buffer: setup.held,
                hold: watch::Sender::new(setup.held),
                silent: AtomicBool::new(setup.silent_until_closed),
                user,
                device,
                state: Mutex::default(),
            });
            tasks.push(tokio::spawn(run_device(
                dev.clone(),
                addrs.to_vec(),
                home,
                backoff.clone(),
                stop.subscribe(),
            )));
            devices.push(dev);
        }
        Fleet {
            devices,
            tasks,
            stop,
        }
    }

    async fn wait_connected(&self, within: Duration) -> Duration {
        wait_for("every device connected", within, || {
            self.devices.iter().all(|d| d.node().is_some())
        })
        .await
    }

    fn devices_on(&self, node: &str) -> Vec<Arc<Device>> {
        self.devices
            .iter()
            .filter(|d| d.node().as_deref() == Some(node))
            .cloned()
            .collect()
    }

    /// Connection ends between `from` and `to`, over all devices.
    fn closes_between(&self, from: Instant, to: Instant) -> Vec<(String, Option<u16>)> {
        let mut closes = Vec::new();
        for d in &self.devices {
            for (at, code) in &d.state().closes {
                if *at >= from && *at <= to {
                    closes.push((format!("{}/{}", d.user, d.device), *code));
                }
            }
        }
        closes
    }

    /// Waits until every device has every message accepted for its user;
    /// how long that took, or None after `within`.
    async fn converge(&self, sent: &SentLog, within: Duration) -> Option<Duration> {
        let started = Instant::now();
        for _ in 0..10_000 {
            let done = self.devices.iter().all(|d| {
                d.missing(sent.accepted.get(&d.user).map_or(&[], |v| v))
                    .is_empty()
            });
            if done {
                return Some(started.elapsed());
            }
            if started.elapsed() > within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    fn tally(&self, sent: &SentLog) -> Tally {
        let mut t = Tally {
            devices: self.devices.len(),
            ..Tally::default()
        };
        for d in &self.devices {
            let accepted = sent.accepted.get(&d.user).map_or(&[][..], |v| v);
            t.expected += accepted.len();
            let missing = d.missing(accepted);
            t.lost += missing.len();
            for m in missing.iter().take(3) {
                if t.lost_examples.len() < 6 {
                    t.lost_examples
                        .push(format!("{}/{} seq {}", d.user, d.device, m.seq));
                }
            }
            let ids: HashSet<Uuid> = accepted.iter().map(|a| a.id).collect();
            let st = d.state();
            t.extra += st.by_id.keys().filter(|id| !ids.contains(id)).count();
            t.doubled += st.doubled as usize;
            t.resent_by_sync += st.resent_by_sync as usize;
            t.redelivered += st.redelivered as usize;
            t.resets += st.resets as usize;
            t.resent_after_reset += st.resent_after_reset as usize;
            t.seq_reused += st.seq_reused.len();
            t.gaps += st.gaps.len();
            for (expected, got) in st.gaps.iter().take(2) {
                t.gap_examples.push(format!(
                    "{}/{} expected {expected} got {got}",
                    d.user, d.device
                ));
            }
            t.connections += st.welcomes.len();
            for (_, code) in &st.closes {
                *t.closes
                    .entry(code.map_or("none".into(), |c| c.to_string()))
                    .or_default() += 1;
            }
        }
        t
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// The checker's verdict over a fleet.
#[derive(Default, Debug)]
struct Tally {
    devices: usize,
    /// Accepted messages times the devices of their recipient.
    expected: usize,
    lost: usize,
    doubled: usize,
    gaps: usize,
    seq_reused: usize,
    redelivered: usize,
    resent_by_sync: usize,
    resets: usize,
    resent_after_reset: usize,
    /// Messages received that were not accepted (a 503 whose append ran
    /// anyway): allowed, the sender could not know.
    extra: usize,
    connections: usize,
    closes: BTreeMap<String, usize>,
    lost_examples: Vec<String>,
    gap_examples: Vec<String>,
}

impl Tally {
    fn exactly_once(&self) -> bool {
        self.lost == 0 && self.doubled == 0 && self.gaps == 0 && self.seq_reused == 0
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} devices, {} deliveries expected: lost {}, doubled {}, gaps {}, seq reused {} \
             (redelivered after reconnect {}, resent by sync {}, extra {}, resets {}, \
             resent after a reset {}); {} connections, closes {:?}",
            self.devices,
            self.expected,
            self.lost,
            self.doubled,
            self.gaps,
            self.seq_reused,
            self.redelivered,
            self.resent_by_sync,
            self.extra,
            self.resets,
            self.resent_after_reset,
            self.connections,
            self.closes
        )?;
        if !self.lost_examples.is_empty() {
            write!(f, "; lost e.g. {:?}", self.lost_examples)?;
        }
        if !self.gap_examples.is_empty() {
            write!(f, "; gaps e.g. {:?}", self.gap_examples)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The sender: POST /v1/messages at a steady rate, recording every 202

#[derive(Debug, Clone)]
struct Accepted {
    seq: u64,
    id: Uuid,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Request {
    started: Instant,
    took: Duration,
    node: usize,
    /// 0: no HTTP answer (connection refused, timeout).
    status: u16,
}

#[derive(Default)]
struct SentLog {
    /// Per user, every accepted message, in acceptance order.
    accepted: HashMap<String, Vec<Accepted>>,
    requests: Vec<Request>,
}

impl SentLog {
    fn accepted_count(&self) -> usize {
        self.requests.iter().filter(|r| r.status == 202).count()
    }
}

struct Sender {
    log: Arc<Mutex<SentLog>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    accepted: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl Sender {
    /// Sends up to `max` messages, one every `every` (at most: a slow answer
    /// slows the sender), through the nodes in turn; messages go to the
    /// users in turn, every fifth one to two users. A node that refuses the
    /// connection is not used again.
    fn start(addrs: &[SocketAddr], users: &[String], every: Duration, max: usize) -> Sender {
        let log = Arc::new(Mutex::new(SentLog::default()));
        let (stop, mut stopped) = watch::channel(false);
        let accepted = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (log, accepted, refused) = (log.clone(), accepted.clone(), refused.clone());
            let addrs = addrs.to_vec();
            let users = users.to_vec();
            async move {
                let client = reqwest::Client::new();
                let mut down = vec![false; addrs.len()];
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut node = 0;
                for i in 0..max {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    if down.iter().all(|d| *d) {
                        return;
                    }
                    node = (node + 1) % addrs.len();
                    while down[node] {
                        node = (node + 1) % addrs.len();
                    }
                    let mut to = vec![users[i % users.len()].clone()];
                    if i % 5 == 4 && users.len() > 1 {
                        to.push(users[(i + 1) % users.len()].clone());
                    }
                    let started = Instant::now();
                    let resp = client
                        .post(format!("http://{}/v1/messages", addrs[node]))
                        .bearer_auth(API_KEY)
                        .timeout(Duration::from_secs(10))
                        .json(&serde_json::json!({
                            "to": {"users": to}, "category": "system", "body": format!("m{i}")
                        }))
                        .send()
                        .await;
                    let status = match resp {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            if status == 202 {
                                let json: serde_json::Value = resp.json().await.unwrap();
                                let id: Uuid = json["id"].as_str().unwrap().parse().unwrap();
                                let at = Instant::now();
                                let mut log = log.lock().unwrap();
                                for stored in json["stored"].as_array().unwrap() {
                                    let user = stored["user"].as_str().unwrap().to_owned();
                                    let seq = stored["seq"].as_u64().unwrap();
                                    log.accepted.entry(user).or_default().push(Accepted {
                                        seq,
                                        id,
                                        at,
                                    });
                                }
                                accepted.fetch_add(1, Ordering::Relaxed);
                            } else if status == 503 {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            status
                        }
                        Err(e) => {
                            if e.is_connect() {
                                down[node] = true;
                            }
                            0
                        }
                    };
                    log.lock().unwrap().requests.push(Request {
                        started,
                        took: started.elapsed(),
                        node,
                        status,
                    });
                }
            }
        });
        Sender {
            log,
            stop,
            task,
            accepted,
            refused,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// Waits until `n` messages were accepted in all.
    async fn wait_accepted(&self, n: usize, within: Duration) {
        wait_for(&format!("{n} messages accepted"), within, || {
            self.accepted() >= n
        })
        .await;
    }

    async fn finish(self) -> SentLog {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the sender stops")
            .expect("the sender did not panic");
        Arc::try_unwrap(self.log)
            .ok()
            .expect("the sender is done")
            .into_inner()
            .unwrap()
    }
}

/// POSTs one message to the user `probe` (no device) through `addr`: its
/// status, 0 without an HTTP answer.
async fn probe(addr: SocketAddr) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{addr}/v1/messages"))
        .bearer_auth(API_KEY)
        .timeout(Duration::from_secs(10))
        .json(
            &serde_json::json!({"to": {"users": ["probe"]}, "category": "system", "body": "probe"}),
        )
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Waits until every node in `addrs` answers a send with 202; returns the
/// time since `since`.
async fn healed(addrs: &[SocketAddr], since: Instant, within: Duration) -> Duration {
    for addr in addrs {
        for attempt in 0.. {
            if probe(*addr).await == 202 {
                break;
            }
            assert!(attempt < 10_000, "node {addr}: 10,000 probes refused");
            assert!(
                since.elapsed() < within,
                "node {addr} does not accept messages {within:?} after the fault ended \
                 ({attempt} probes)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    since.elapsed()
}

/// The user's inbox as the store has it: (seq, id), through the API.
async fn store_inbox(addr: SocketAddr, user: &str) -> Vec<(u64, Uuid)> {
    let client = reqwest::Client::new();
    let mut all = Vec::new();
    let mut after = 0;
    for _ in 0..100 {
        let json: serde_json::Value = client
            .get(format!(
                "http://{addr}/v1/users/{user}/inbox?after={after}&limit=1000"
            ))
            .bearer_auth(API_KEY)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = json["messages"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        for m in page {
            let seq = m["seq"].as_u64().unwrap();
            all.push((seq, m["id"].as_str().unwrap().parse().unwrap()));
            after = seq;
        }
    }
    all
}

/// Every user's store inbox holds seqs 1..=last without a hole, and every
/// accepted message under its seq.
async fn assert_store_whole(addr: SocketAddr, sent: &SentLog) {
    for (user, accepted) in &sent.accepted {
        let inbox = store_inbox(addr, user).await;
        let seqs: Vec<u64> = inbox.iter().map(|(s, _)| *s).collect();
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, want, "{user}'s inbox has a seq gap");
        let by_seq: HashMap<u64, Uuid> = inbox.into_iter().collect();
        for a in accepted {
            assert_eq!(
                by_seq.get(&a.seq),
                Some(&a.id),
                "{user}: accepted seq {} not in the store",
                a.seq
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Nodes, Redis, /proc

/// Starts `herald` processes (logging errors only: the outages here make
/// every node warn many times a second).
async fn start_nodes(ids: &[&str], redis_url: &str, env: &[(&str, &str)]) -> Vec<ProcessNode> {
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "error,fred=off"));
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(ProcessNode::start(id, redis_url, &env).await);
    }
    nodes
}

/// The pid of the `herald` child of this process whose node id is `id`
/// (from /proc: its parent and its environment).
fn node_pid(id: &str) -> u32 {
    let me = std::process::id();
    let wanted = format!("HERALD__NODE__ID={id}\0");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces, so after the ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(me) {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if environ
            .windows(wanted.len())
            .any(|w| w == wanted.as_bytes())
        {
            return pid;
        }
    }
    panic!("no herald child with node id {id}");
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Samples `f` every `every` on a thread until stopped (or `max` samples).
struct Sampler<T: Send + 'static> {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(Instant, T)>>,
}

impl<T: Send + 'static> Sampler<T> {
    fn start(
        every: Duration,
        max: usize,
        mut f: impl FnMut() -> Option<T> + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut samples = Vec::new();
                for _ in 0..max {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Some(v) = f() {
                        samples.push((Instant::now(), v));
                    }
                    std::thread::sleep(every);
                }
                samples
            }
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> Vec<(Instant, T)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the sampler did not panic")
    }
}

/// A RESP value, as much as these tests need.
#[derive(Debug, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Resp>),
}

/// A blocking RESP connection to a Redis on 127.0.0.1 (several commands on
/// one connection: WAIT waits for this connection's own writes).
struct RedisConn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RedisConn {
    fn connect(port: u16) -> std::io::Result<RedisConn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_nodelay(true)?;
        Ok(RedisConn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    fn call(&mut self, args: &[&str]) -> std::io::Result<Resp> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.writer.write_all(out.as_bytes())?;
        self.read()
    }

    fn read(&mut self) -> std::io::Result<Resp> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1);
        let bad = |_| std::io::Error::from(std::io::ErrorKind::InvalidData);
        Ok(match kind {
            "+" => Resp::Simple(rest.to_owned()),
            "-" => Resp::Error(rest.to_owned()),
            ":" => Resp::Int(rest.parse().map_err(bad)?),
            "$" => {
                let len: i64 = rest.parse().map_err(bad)?;
                if len < 0 {
                    Resp::Bulk(None)
                } else {
                    let mut buf = vec![0u8; len as usize + 2];
                    std::io::Read::read_exact(&mut self.reader, &mut buf)?;
                    buf.truncate(len as usize);
                    Resp::Bulk(Some(String::from_utf8_lossy(&buf).into_owned()))
                }
            }
            "*" => {
                let len: i64 = rest.parse().map_err(bad)?;
                let mut items = Vec::new();
                for _ in 0..len.max(0) {
                    items.push(self.read()?);
                }
                Resp::Array(items)
            }
            _ => return Err(std::io::ErrorKind::InvalidData.into()),
        })
    }
}

/// `INFO <section>` as a map.
fn redis_info(port: u16, section: &str) -> Option<HashMap<String, String>> {
    let Resp::Bulk(Some(text)) = RedisConn::connect(port)
        .ok()?
        .call(&["INFO", section])
        .ok()?
    else {
        return None;
    };
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

fn redis_pid(port: u16) -> u32 {
    redis_info(port, "server").expect("INFO server")["process_id"]
        .parse()
        .unwrap()
}

/// kill -<signal> <pid>, for processes this test started.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Redis's command counters: (total_commands_processed,
/// instantaneous_ops_per_sec).
fn redis_ops(port: u16) -> Option<(u64, u64)> {
    let info = redis_info(port, "stats")?;
    Some((
        info.get("total_commands_processed")?.parse().ok()?,
        info.get("instantaneous_ops_per_sec")?.parse().ok()?,
    ))
}

/// Commands per second over `[from, to]`: the mean, the peak over any
/// `window` of consecutive samples, and the peak of Redis's own
/// instantaneous_ops_per_sec.
fn ops_rates(
    samples: &[(Instant, (u64, u64))],
    from: Instant,
    to: Instant,
    window: Duration,
) -> (f64, f64, u64) {
    let inside: Vec<&(Instant, (u64, u64))> = samples
        .iter()
        .filter(|(at, _)| *at >= from && *at <= to)
        .collect();
    if inside.len() < 2 {
        return (0.0, 0.0, 0);
    }
    let rate = |a: &(Instant, (u64, u64)), b: &(Instant, (u64, u64))| {
        (b.1 .0 - a.1 .0) as f64 / (b.0 - a.0).as_secs_f64()
    };
    let mean = rate(inside[0], inside[inside.len() - 1]);
    let mut peak: f64 = 0.0;
    for (i, a) in inside.iter().enumerate() {
        if let Some(b) = inside[i..].iter().find(|b| b.0 - a.0 >= window) {
            peak = peak.max(rate(a, b));
        }
    }
    let instantaneous = inside.iter().map(|(_, (_, i))| *i).max().unwrap_or(0);
    (mean, peak, instantaneous)
}

async fn start_redis(args: &'static [&'static str]) -> RedisServer {
    tokio::task::spawn_blocking(move || RedisServer::start_with(args))
        .await
        .unwrap()
}

/// A short summary of durations: min / median / max in ms.
fn spread(mut d: Vec<Duration>) -> String {
    if d.is_empty() {
        return "-".into();
    }
    d.sort();
    format!(
        "min {} / median {} / max {} ms",
        ms(d[0]),
        ms(d[d.len() / 2]),
        ms(d[d.len() - 1])
    )
}

/// Most time any one wait of these tests may take.
const LONG: Duration = Duration::from_secs(60);
/// The sender's pace: at most 100 messages per second.
const PACE: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------
// kill -9 of one of three nodes

/// Three nodes; users with one or two devices spread over them; steady
/// traffic through the API. Node A dies with SIGKILL: its devices see their
/// connections end, reconnect (jittered backoff) to B and C, and every
/// accepted message reaches every device exactly once.
#[test]
fn kill_9_of_one_of_three_nodes_moves_its_clients_and_loses_or_doubles_nothing() {
    run(async {
        let redis = start_redis(&[]).await;
        let ids = ["k9-a", "k9-b", "k9-c"];
        let mut nodes = start_nodes(&ids, &redis.url(), &[]).await;
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let users = names("k", 12);
        let fleet = Fleet::start(
            device_specs(&users, nodes.len()),
            &addrs,
            Backoff::new(100, 2_000),
        );
        fleet.wait_connected(LONG).await;
        let on_a = fleet.devices_on(ids[0]);
        assert!(!on_a.is_empty());

        let sender = Sender::start(&addrs, &users, PACE, 20_000);
        sender.wait_accepted(300, LONG).await;
        let killed_at = Instant::now();
        nodes[0].kill9();
        // Every device of A is welcomed by another node.
        let moved_in = wait_for("A's devices on B or C", LONG, || {
            on_a.iter().all(|d| d.node().is_some_and(|n| n != ids[0]))
        })
        .await;
        let moves: Vec<Duration> = on_a
            .iter()
            .map(|d| d.state().welcomes.last().unwrap().0 - killed_at)
            .collect();
        let landed: BTreeMap<String, usize> = on_a.iter().fold(BTreeMap::new(), |mut m, d| {
            *m.entry(d.node().unwrap()).or_default() += 1;
            m
        });
        let at_kill = sender.accepted();
        sender.wait_accepted(at_kill + 300, LONG).await;
        let sent = sender.finish().await;
        let converged = fleet.converge(&sent, LONG).await;
        let tally = fleet.tally(&sent);
        let refused_by_a = sent
            .requests
            .iter()
            .filter(|r| r.node == 0 && r.started >= killed_at)
            .count();
        eprintln!(
            "kill -9: {} of {} devices were on A; all on B/C {} ms after the kill \
             (each: {}), landed {landed:?}; {} messages accepted, {refused_by_a} sends to A \
             failed after the kill; every device caught up {:?} after the sends ended; {tally}",
            on_a.len(),
            fleet.devices.len(),
            ms(moved_in),
            spread(moves),
            sent.accepted_count(),
            converged,
        );
        assert!(tally.exactly_once(), "{tally}");
        assert_store_whole(addrs[1], &sent).await;
        fleet.stop().await;
    });
}

// ---------------------------------------------------------------------------
// Redis restarted, Redis unreachable

/// How Redis goes away and comes back.
enum Outage {
    /// redis-server killed with SIGKILL, restarted on its port and dir
    /// (AOF replayed).
    Restart(Option<RedisServer>),
    /// The link from the nodes to Redis cut at a [`TcpProxy`], then
    /// restored; Redis itself runs throughout.
    Cut {
        proxy: TcpProxy,
        _redis: RedisServer,
    },
}

impl Outage {
    async fn begin(&mut self) {
        match self {
            Outage::Restart(redis) => {
                let mut server = redis.take().unwrap();
                *redis = Some(
                    tokio::task::spawn_blocking(move || {
                        server.kill();
                        server
                    })
                    .await
                    .unwrap(),
                );
            }
            Outage::Cut { proxy, .. } => {
                proxy.cut();
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::Restart(redis) => {
                let mut server = redis.take().unwrap();
                *redis = Some(
                    tokio::task::spawn_blocking(move || {
                        server.restart();
                        server
                    })
                    .await
                    .unwrap(),
                );
            }
            Outage::Cut { proxy, .. } => proxy.restore(),
        }
    }
}

/// Two nodes, devices on both, steady traffic; Redis goes away for at
/// least `down_for` (and until the API refused a few sends), then comes
/// back. Checks the promises: while down the API answers 503 (never 202,
/// nothing else) and every device stays connected; afterwards every node
/// accepts again without a restart, every accepted message reaches every
/// device exactly once, and the store holds every inbox without a seq gap.
async fn outage_under_traffic(
    prefix: &str,
    redis_url: &str,
    mut outage: Outage,
    down_for: Duration,
) {
    // Commands give up after 500 ms (default 2 s) while Redis is away.
    let env = [("HERALD__REDIS__COMMAND_TIMEOUT_MS", "500")];
    let ids = [format!("{prefix}-a"), format!("{prefix}-b")];
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let nodes = start_nodes(&ids, redis_url, &env).await;
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let users = names(prefix, 8);
    let fleet = Fleet::start(
        device_specs(&users, nodes.len()),
        &addrs,
        Backoff::new(100, 2_000),
    );
    fleet.wait_connected(LONG).await;
    let sender = Sender::start(&addrs, &users, PACE, 50_000);
    sender.wait_accepted(200, LONG).await;

    outage.begin().await;
    let down_at = Instant::now();
    let refused = sender.refused();
    wait_for("sends refused while Redis is away", LONG, || {
        sender.refused() >= refused + 6
    })
    .await;
    let left = down_for.saturating_sub(down_at.elapsed());
    tokio::time::sleep(left).await;
    let connected = fleet.devices.iter().filter(|d| d.node().is_some()).count();
    outage.end().await;
    let up_at = Instant::now();
    let heal = healed(&addrs, up_at, LONG).await;
    let at_up = sender.accepted();
    sender.wait_accepted(at_up + 200, LONG).await;
    let sent = sender.finish().await;
    let converged = fleet.converge(&sent, LONG).await;
    let tally = fleet.tally(&sent);

    // Sends answered while Redis was away.
    let mut during: BTreeMap<u16, usize> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    for r in &sent.requests {
        if r.started >= down_at && r.started + r.took <= up_at {
            *during.entry(r.status).or_default() += 1;
            slowest = slowest.max(r.took);
        }
    }
    let closed_while_down = fleet.closes_between(down_at, up_at);
    let closed_after = fleet.closes_between(up_at, Instant::now());
    eprintln!(
        "{prefix}: Redis away {} ms; answers meanwhile {during:?} (slowest {} ms); \
         {connected}/{} devices connected at the end of the outage, closes while away \
         {closed_while_down:?}, after {closed_after:?}; every node accepts again {} ms after \
         Redis is back; {} accepted, caught up {converged:?} after the sends ended; {tally}",
        ms(up_at - down_at),
        ms(slowest),
        fleet.devices.len(),
        ms(heal),
        sent.accepted_count(),
    );
    assert!(
        during.keys().all(|s| *s == 503),
        "while Redis was away the API answered {during:?}"
    );
    assert!(
        closed_while_down.is_empty() && connected == fleet.devices.len(),
        "devices were disconnected while Redis was away: {closed_while_down:?}"
    );
    assert!(tally.exactly_once(), "{tally}");
    assert_store_whole(addrs[0], &sent).await;
    fleet.stop().await;
}

/// Redis (AOF, `appendfsync always`) killed with SIGKILL under traffic and
/// restarted: no accepted message is lost, the API answers 503 meanwhile,
/// devices stay connected, the nodes heal by themselves.
#[test]
fn redis_restart_with_aof_loses_nothing_answers_503_while_down_and_heals() {
    run(async {
        let redis = start_redis(&["--appendonly", "yes", "--appendfsync", "always"]).await;
        let url = redis.url();
        outage_under_traffic("rr", &url, Outage::Restart(Some(redis)), Duration::ZERO).await;
    });
}

/// The link to Redis cut for 10 s (a TCP proxy drops every connection and
/// refuses new ones) under traffic: the same promises as a restart, and no
/// half-written message: every inbox in the store is 1..=last without a gap,
/// and no device saw a seq gap.
#[test]
fn redis_unreachable_for_10_s_answers_503_heals_and_leaves_no_seq_gap() {
    run(async {
        let redis = start_redis(&[]).await;
        let proxy = TcpProxy::to_port(redis.port());
        let url = proxy.redis_url();
        let outage = Outage::Cut {
            proxy,
            _redis: redis,
        };
        outage_under_traffic("cut", &url, outage, Duration::from_secs(10)).await;
    });
}

// ---------------------------------------------------------------------------
// Sentinel failover

#[derive(Clone, Copy, Debug, PartialEq)]
enum Replication {
    /// Redis's default: the primary acknowledges writes before any replica
    /// has them.
    Async,
    /// `min-replicas-to-write 1`, `min-replicas-max-lag 1` on the primary:
    /// it refuses writes while no replica acknowledged within about a second.
    MinReplicas,
}

/// What one failover cost. Messages to two users count twice (appends:
/// one per inbox).
#[derive(Debug, Default)]
struct FailoverReport {
    /// Appends accepted before the replica stalled.
    accepted_before_lag: usize,
    /// Appends accepted while the replica was stalled (some still reach it:
    /// what the primary had written into the replica's socket buffer).
    accepted_during_lag: usize,
    /// Messages refused (503) while the replica was stalled.
    refused_during_lag: usize,
    /// From the replica's stall to the first 503 (min-replicas).
    first_refusal_ms: Option<u128>,
    /// Accepted appends a WAIT 1 issued after their 202 confirmed.
    wait_confirmed: usize,
    /// Accepted appends (by id) the store no longer has after the failover.
    lost_from_store: usize,
    lost_wait_confirmed: usize,
    /// Accepted appends whose seq the store now holds with another message.
    seqs_reused_in_store: usize,
    /// Kill of the primary → the Sentinel names the replica.
    failover_ms: u128,
    /// Kill of the primary → the node accepts again.
    heal_ms: u128,
    /// Deliveries due (appends × the receiver's devices) of the messages
    /// accepted after the primary died.
    deliveries_after_failover: usize,
    /// Of those, the ones that never reached their device.
    missed_after_failover: usize,
    tally: Tally,
}

/// The primary as the Sentinel names it now.
fn sentinel_primary_port(sentinel_port: u16) -> Option<u16> {
    let reply = RedisConn::connect(sentinel_port)
        .ok()?
        .call(&["SENTINEL", "get-master-addr-by-name", SENTINEL_SERVICE])
        .ok()?;
    match reply {
        Resp::Array(items) => match items.get(1) {
            Some(Resp::Bulk(Some(port))) => port.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// One node on a Sentinel-watched primary with one replica, devices,
/// steady traffic. With `lag`, the replica is stopped (SIGSTOP: a lagging
/// or partitioned replica) for at least 3 s (and, with min-replicas, until
/// the primary refused writes); then the primary dies (SIGKILL), the
/// replica resumes and the Sentinel promotes it. The devices get
/// `catch_up_within` to receive what was accepted. Meanwhile a WAIT barrier
/// runs on the primary every 50 ms (INCR, then WAIT 1 100 on the same
/// connection): a message accepted before a barrier that a replica
/// acknowledged is what Herald would promise if it called WAIT.
async fn failover_under_traffic(
    prefix: &str,
    mode: Replication,
    lag: bool,
    catch_up_within: Duration,
) -> FailoverReport {
    let mut sentinel = tokio::task::spawn_blocking(RedisSentinel::start_with_replica)
        .await
        .unwrap();
    let primary_port = sentinel.primary().port();
    let replica_port = sentinel.replica().unwrap().port();
    let sentinel_port = sentinel.sentinel_port();
    if mode == Replication::MinReplicas {
        let mut conn = RedisConn::connect(primary_port).unwrap();
        for (key, value) in [
            ("min-replicas-to-write", "1"),
            ("min-replicas-max-lag", "1"),
        ] {
            let reply = conn.call(&["CONFIG", "SET", key, value]).unwrap();
            assert_eq!(reply, Resp::Simple("OK".into()));
        }
    }
    let env = [("HERALD__REDIS__COMMAND_TIMEOUT_MS", "500")];
    let id = format!("{prefix}-n");
    let nodes = start_nodes(&[&id], &sentinel.url(), &env).await;
    let addrs = vec![nodes[0].addr];
    let users = names(prefix, 4);
    let fleet = Fleet::start(device_specs(&users, 1), &addrs, Backoff::new(100, 2_000));
    fleet.wait_connected(LONG).await;

    let barriers = Sampler::start(Duration::from_millis(50), 10_000, {
        let mut conn: Option<RedisConn> = None;
        move || {
            let started = Instant::now();
            let c = match &mut conn {
                Some(c) => c,
                None => conn.insert(RedisConn::connect(primary_port).ok()?),
            };
            let acked = match c.call(&["INCR", "faults:barrier"]) {
                Ok(Resp::Int(_)) => match c.call(&["WAIT", "1", "100"]) {
                    Ok(Resp::Int(n)) => n,
                    _ => return None,
                },
                // NOREPLICAS (min-replicas): not confirmed.
                Ok(_) => 0,
                Err(_) => {
                    conn = None;
                    return None;
                }
            };
            Some((started, acked))
        }
    });

    let sender = Sender::start(&addrs, &users, PACE, 50_000);
    sender.wait_accepted(100, LONG).await;
    let mut report = FailoverReport::default();
    let replica_pid = redis_pid(replica_port);
    let lag_at = Instant::now();
    let refused_at_lag = sender.refused();
    if lag {
        signal(replica_pid, "STOP");
        let at_least = Duration::from_secs(3);
        wait_for("the replica's stall", LONG, || {
            lag_at.elapsed() >= at_least
                && (mode == Replication::Async || sender.refused() >= refused_at_lag + 3)
        })
        .await;
    }
    let kill_at = Instant::now();
    let _sentinel = tokio::task::spawn_blocking(move || {
        sentinel.primary_mut().kill();
        sentinel
    })
    .await
    .unwrap();
    if lag {
        signal(replica_pid, "CONT");
    }
    wait_for("the Sentinel to promote the replica", LONG, || {
        sentinel_primary_port(sentinel_port) == Some(replica_port)
    })
    .await;
    let failover = kill_at.elapsed();
    let heal = healed(&addrs, kill_at, LONG).await;
    let healed_at = Instant::now();
    let at_heal = sender.accepted();
    sender.wait_accepted(at_heal + 100, LONG).await;
    let sent = sender.finish().await;
    let barriers = barriers.finish();
    let converged = fleet.converge(&sent, catch_up_within).await;

    for a in sent.accepted.values().flatten() {
        if a.at < lag_at {
            report.accepted_before_lag += 1;
        } else if a.at < kill_at {
            report.accepted_during_lag += 1;
        }
    }
    let refused_in_lag = sent
        .requests
        .iter()
        .filter(|r| r.status == 503 && r.started >= lag_at && r.started + r.took <= kill_at);
    for r in refused_in_lag {
        report.refused_during_lag += 1;
        let after = ms(r.started + r.took - lag_at);
        report.first_refusal_ms = Some(report.first_refusal_ms.map_or(after, |f| f.min(after)));
    }
    report.failover_ms = ms(failover);
    report.heal_ms = ms(heal);
    let confirmed_until = barriers
        .iter()
        .filter(|(_, (_, acked))| *acked >= 1)
        .map(|(_, (started, _))| *started)
        .max();
    for user in &users {
        let store: HashMap<u64, Uuid> = store_inbox(addrs[0], user).await.into_iter().collect();
        let ids: HashSet<Uuid> = store.values().copied().collect();
        for a in sent.accepted.get(user).map_or(&[][..], |v| v) {
            let confirmed = confirmed_until.is_some_and(|c| c >= a.at);
            report.wait_confirmed += confirmed as usize;
            if !ids.contains(&a.id) {
                report.lost_from_store += 1;
                report.lost_wait_confirmed += confirmed as usize;
            }
            if store.get(&a.seq).is_some_and(|id| *id != a.id) {
                report.seqs_reused_in_store += 1;
            }
        }
    }
    for d in &fleet.devices {
        let after: Vec<Accepted> = sent
            .accepted
            .get(&d.user)
            .map_or(&[][..], |v| v)
            .iter()
            .filter(|a| a.at >= kill_at)
            .cloned()
            .collect();
        report.deliveries_after_failover += after.len();
        report.missed_after_failover += d.missing(&after).len();
    }
    report.tally = fleet.tally(&sent);
    eprintln!(
        "{prefix} ({mode:?}, lag {lag}): caught up {converged:?}, healed {} ms after the kill \
         (accepting since {} ms ago); {report:#?}",
        ms(heal),
        ms(healed_at.elapsed())
    );
    fleet.stop().await;
    drop(nodes);
    report
}

/// A Sentinel failover with writes acknowledged just before the primary
/// dies, measured per Redis mode (docs/faults.md has the numbers):
///
/// - default (asynchronous replication): everything acknowledged while the
///   replica lagged is lost, as long as the lag lasted;
/// - `min-replicas-to-write 1` (`min-replicas-max-lag 1`): the primary
///   refuses writes (503) about 2–3 s into the lag, so at most that much
///   is lost;
/// - a WAIT barrier after the 202 (what Herald would do if it called
///   WAIT): nothing it confirmed is lost, in either mode.
///
/// Asserted: nothing WAIT-confirmed is lost; no more is lost than what was
/// accepted while the replica lagged (without a lag: nothing, and every
/// device gets everything exactly once); min-replicas refuses during the
/// lag; the node heals by itself. What the lost seqs do to the messages accepted after the
/// failover is the next test.
#[test]
fn sentinel_failover_loses_only_unreplicated_writes_and_min_replicas_bounds_them() {
    run(async {
        let plain = failover_under_traffic("fp", Replication::Async, false, LONG).await;
        let lagging = failover_under_traffic("fa", Replication::Async, true, LONG).await;
        let bounded = failover_under_traffic("fm", Replication::MinReplicas, true, LONG).await;
        assert!(plain.tally.exactly_once(), "{:#?}", plain.tally);
        for (name, r) in [
            ("plain", &plain),
            ("async", &lagging),
            ("min-replicas", &bounded),
        ] {
            assert_eq!(r.lost_wait_confirmed, 0, "{name}: {r:#?}");
            // At most what was accepted while the replica lagged, plus the
            // few appends in flight when it stopped or the primary died.
            assert!(
                r.lost_from_store <= r.accepted_during_lag + 10,
                "{name}: lost more than what was accepted while the replica lagged: {r:#?}"
            );
        }
        assert!(bounded.refused_during_lag > 0, "{bounded:#?}");
        eprintln!(
            "failover: lost (of accepted during the lag) plain {}, async {}/{}, min-replicas \
             {}/{} (refused {} from {:?} ms into the lag)",
            plain.lost_from_store,
            lagging.lost_from_store,
            lagging.accepted_during_lag,
            bounded.lost_from_store,
            bounded.accepted_during_lag,
            bounded.refused_during_lag,
            bounded.first_refusal_ms
        );
    });
}

// ---------------------------------------------------------------------------
// Slow consumers and a client that never reads

/// Whether `user` has a connection in presence (asked through `addr`).
async fn online(addr: SocketAddr, user: &str) -> bool {
    let json: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{addr}/v1/users/{user}/presence"))
        .bearer_auth(API_KEY)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    json["online"] == true
}

/// Waits until presence says `want` (online or not) for every user in
/// `users`; returns how long that took.
async fn wait_presence(
    addr: SocketAddr,
    users: &[String],
    want: bool,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    for user in users {
        for polls in 0.. {
            if online(addr, user).await == want {
                break;
            }
            assert!(
                started.elapsed() < within && polls < 10_000,
                "{user} online should be {want} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    started.elapsed()
}

/// A node's Prometheus sample `name` (first series), if present.
async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name)?
            .split_whitespace()
            .last()?
            .parse()
            .ok()
    })
}

/// Body of each burst message.
const BURST_BODY: usize = 16 * 1024;
/// Messages of one burst batch (each to every user of the burst).
const BURST_BATCH: usize = 20;

/// One `POST /v1/messages/batch` of [`BURST_BATCH`] large messages, each to
/// all of `users`; the accepted messages go into `sent`.
async fn burst(addr: SocketAddr, users: &[String], round: usize, sent: &mut SentLog) {
    let body = "x".repeat(BURST_BODY);
    let messages: Vec<serde_json::Value> = (0..BURST_BATCH)
        .map(|i| {
            serde_json::json!({
                "to": {"users": users}, "category": "system", "title": format!("burst {round}.{i}"),
                "body": body,
            })
        })
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/messages/batch"))
        .bearer_auth(API_KEY)
        .timeout(Duration::from_secs(30))
        .json(&serde_json::json!({ "messages": messages }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let json: serde_json::Value = resp.json().await.unwrap();
    let at = Instant::now();
    for result in json["results"].as_array().unwrap() {
        let id: Uuid = result["id"].as_str().unwrap().parse().unwrap();
        for stored in result["stored"].as_array().unwrap() {
            sent.accepted
                .entry(stored["user"].as_str().unwrap().to_owned())
                .or_default()
                .push(Accepted {
                    seq: stored["seq"].as_u64().unwrap(),
                    id,
                    at,
                });
        }
    }
}

/// Bursts to the held device `dev` (alone on `addr`'s node) until that
/// node's outbound queue filled, then one more (refused by the full queue:
/// the hub lets go of the connection), then lets the device read again.
/// Returns its first close code once it has one.
async fn overflow_then_read(
    addr: SocketAddr,
    dev: &Arc<Device>,
    sent: &mut SentLog,
) -> Option<u16> {
    let user = [dev.user.clone()];
    let mut overflowed = false;
    for round in 0..60 {
        burst(addr, &user, round, sent).await;
        if metric(addr, "herald_outbound_queue_high_water").await >= Some(32.0) {
            burst(addr, &user, 1000 + round, sent).await;
            overflowed = true;
            break;
        }
    }
    assert!(overflowed, "{}'s outbound queue never filled", dev.user);
    dev.hold.send_replace(false);
    wait_for("the slow device's first close", LONG, || {
        !dev.state().closes.is_empty()
    })
    .await;
    let code = dev.state().closes[0].1;
    code
}

/// Two nodes with `ws.outbound_queue` 32: on the first a write may block
/// 60 s, on the second 2 s (`ws.write_timeout_ms`). Light traffic to
/// devices that read; bursts of 16 KiB messages to
///
/// - six devices on the second node that never read (4 KiB receive buffer):
///   the node drops each once a write blocked 2 s, and its memory stays
///   bounded meanwhile (RSS from /proc before, through the bursts, after);
/// - one device on the first node that stops reading (and writes nothing)
///   until its queue overflowed: it reads 4008 once it reads again.
///
/// Then they read again, reconnect, `sync`, and every accepted message
/// reaches every device exactly once.
#[test]
fn slow_and_stalled_consumers_are_closed_with_bounded_memory_and_resume_losing_nothing() {
    run(async {
        let redis = start_redis(&[]).await;
        let queue = ("HERALD__WS__OUTBOUND_QUEUE", "32");
        let slow_node = start_nodes(
            &["sc-slow"],
            &redis.url(),
            &[queue, ("HERALD__WS__WRITE_TIMEOUT_MS", "60000")],
        )
        .await;
        let stall_node = start_nodes(
            &["sc-stall"],
            &redis.url(),
            &[queue, ("HERALD__WS__WRITE_TIMEOUT_MS", "2000")],
        )
        .await;
        let addrs = [slow_node[0].addr, stall_node[0].addr];
        let slowpoke = vec!["scslow".to_owned()];
        let stalled = names("scstall", 6);
        let readers = names("scread", 4);
        let mut specs = vec![(slowpoke[0].clone(), "phone".to_owned(), 0)];
        specs.extend(stalled.iter().map(|u| (u.clone(), "tv".to_owned(), 1)));
        specs.extend(
            readers
                .iter()
                .enumerate()
                .map(|(i, u)| (u.clone(), "phone".to_owned(), i % 2)),
        );
        let fleet = Fleet::start_with(specs, &addrs, Backoff::new(100, 2_000), |u| Setup {
            held: !u.starts_with("scread"),
            silent_until_closed: u.starts_with("scslow"),
        });
        wait_presence(addrs[0], &slowpoke, true, LONG).await;
        wait_presence(addrs[1], &stalled, true, LONG).await;
        for d in fleet
            .devices
            .iter()
            .filter(|d| d.user.starts_with("scread"))
        {
            wait_for("readers connected", LONG, || d.node().is_some()).await;
        }
        let sender = Sender::start(&addrs, &readers, Duration::from_millis(20), 50_000);
        sender.wait_accepted(20, LONG).await;

        // The stalled devices: bursts until the node dropped all six.
        let pid = node_pid("sc-stall");
        let rss_before = rss_kib(pid);
        let rss = Sampler::start(Duration::from_millis(25), 100_000, move || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .map(|_| rss_kib(pid))
        });
        let mut bursts = SentLog::default();
        let burst_started = Instant::now();
        let mut rounds_done = Vec::new();
        for round in 0..100 {
            burst(addrs[1], &stalled, round, &mut bursts).await;
            rounds_done.push(Instant::now());
            let mut still = 0;
            for user in &stalled {
                still += online(addrs[1], user).await as usize;
            }
            if still == 0 {
                break;
            }
        }
        let rounds = rounds_done.len();
        let dropped_after = burst_started.elapsed();
        for user in &stalled {
            assert!(
                !online(addrs[1], user).await,
                "{user} still connected after {rounds} bursts"
            );
        }
        let pushed_mib = (rounds * BURST_BATCH * BURST_BODY * stalled.len()) as f64 / 1048576.0;
        let rss_samples = rss.finish();
        let rss_after = rss_kib(pid);
        let peak_between = |from: Instant, to: Instant| {
            rss_samples
                .iter()
                .filter(|(at, _)| *at >= from && *at <= to)
                .map(|(_, k)| *k)
                .max()
                .unwrap_or(0)
        };
        let end = Instant::now();
        let rss_peak = peak_between(burst_started, end);
        let half = rounds_done[rounds / 2];
        let (first_half, second_half) =
            (peak_between(burst_started, half), peak_between(half, end));
        for d in fleet
            .devices
            .iter()
            .filter(|d| d.user.starts_with("scstall"))
        {
            d.hold.send_replace(false);
        }

        // The slow device: its queue overflows, then it reads.
        let slow_close = overflow_then_read(addrs[0], &fleet.devices[0], &mut bursts).await;

        let at = sender.accepted();
        sender.wait_accepted(at + 20, LONG).await;
        let mut sent = sender.finish().await;
        for (user, accepted) in bursts.accepted {
            sent.accepted.entry(user).or_default().extend(accepted);
        }
        let converged = fleet.converge(&sent, LONG).await;
        let tally = fleet.tally(&sent);
        let stall_closes: Vec<Option<u16>> = fleet
            .devices
            .iter()
            .filter(|d| d.user.starts_with("scstall"))
            .map(|d| d.state().closes.first().map_or(Some(0), |c| c.1))
            .collect();
        let slow_closes = metric(addrs[0], "herald_slow_consumer_closes_total").await;
        let mib = |kib: u64| kib as f64 / 1024.0;
        let growth_mib = mib(rss_peak.saturating_sub(rss_before));
        eprintln!(
            "slow consumers: {} stalled devices dropped {} ms after the first burst \
             ({rounds} bursts, {pushed_mib:.1} MiB accepted for them), their closes \
             {stall_closes:?}; stall node RSS before {:.1} MiB, peak {:.1} MiB (+{growth_mib:.1}; \
             first half of the bursts {:.1}, second half {:.1}), after {:.1} MiB; \
             the slow device read close {slow_close:?} (slow_consumer_closes_total \
             {slow_closes:?}); caught up {converged:?}; {tally}",
            stalled.len(),
            ms(dropped_after),
            mib(rss_before),
            mib(rss_peak),
            mib(first_half),
            mib(second_half),
            mib(rss_after),
        );
        assert_eq!(slow_close, Some(4008), "the slow device's close");
        assert!(
            stall_closes.iter().all(|c| c.is_none()),
            "the stalled devices are dropped without a close frame: {stall_closes:?}"
        );
        // Bounded: what the node holds for a connection that does not read
        // is its queue and its write buffer, whatever is sent to it. The
        // peak is the working set of a burst in flight (a 2 MiB batch
        // parsed, appended, published, decoded, encoded), reached in the
        // first bursts; it does not grow with what follows.
        assert!(
            growth_mib < 96.0,
            "RSS grew {growth_mib:.1} MiB while {pushed_mib:.1} MiB went to devices that \
             never read"
        );
        assert!(
            rounds < 4 || mib(second_half) < mib(first_half) + 16.0,
            "RSS kept growing with the bursts: {:.1} MiB in the first half, {:.1} in the second",
            mib(first_half),
            mib(second_half)
        );
        assert!(tally.exactly_once(), "{tally}");
        fleet.stop().await;
    });
}

/// A slow consumer that writes (an `ack`, as the protocol asks, or a
/// `sync`) while it catches up still reads its 4008: after its close frame
/// the node reads until the client's close (the closing handshake) instead
/// of dropping the socket with the client's frames unread, which made the
/// kernel answer with a reset that threw away the close frame.
#[test]
fn a_slow_consumer_that_acks_while_catching_up_reads_4008() {
    run(async {
        let redis = start_redis(&[]).await;
        let nodes = start_nodes(
            &["sa-slow"],
            &redis.url(),
            &[
                ("HERALD__WS__OUTBOUND_QUEUE", "32"),
                ("HERALD__WS__WRITE_TIMEOUT_MS", "60000"),
            ],
        )
        .await;
        let addr = nodes[0].addr;
        let specs = vec![("saslow".to_owned(), "phone".to_owned(), 0)];
        let fleet = Fleet::start_with(specs, &[addr], Backoff::new(100, 2_000), |_| Setup {
            held: true,
            silent_until_closed: false,
        });
        wait_presence(addr, &["saslow".to_owned()], true, LONG).await;
        let mut sent = SentLog::default();
        let close = overflow_then_read(addr, &fleet.devices[0], &mut sent).await;
        let converged = fleet.converge(&sent, LONG).await;
        let tally = fleet.tally(&sent);
        let server_side = metric(addr, "herald_slow_consumer_closes_total").await;
        eprintln!(
            "slow consumer that acks: read close {close:?}, the node closed {server_side:?} \
             slow consumers; caught up {converged:?}; {tally}"
        );
        assert!(tally.exactly_once(), "{tally}");
        assert_eq!(close, Some(4008), "the close code the client read");
        fleet.stop().await;
    });
}

// ---------------------------------------------------------------------------
// Reconnect storm

/// What one storm cost: how the reconnects spread, and Redis's load.
#[derive(Debug)]
struct Storm {
    devices: usize,
    /// From the kill to the last device welcomed elsewhere.
    all_moved_ms: u128,
    /// Connect attempts after the kill (refused ones included), and the most
    /// in any 100 ms.
    attempts: usize,
    peak_attempts_per_100ms: usize,
    /// Redis commands per second: before the kill (mean), during the
    /// storm (peak over 500 ms, and Redis's instantaneous_ops_per_sec).
    baseline_ops: f64,
    peak_ops_500ms: f64,
    peak_instantaneous_ops: u64,
    /// Commands during the storm above the baseline, per device moved.
    commands_per_move: f64,
}

/// Kills `nodes[victim]` and waits until its devices are on other nodes;
/// measures the storm from `samples` of Redis's counters.
async fn storm(fleet: &Fleet, nodes: &mut [ProcessNode], victim: usize, redis_port: u16) -> Storm {
    let victims = fleet.devices_on(&nodes[victim].id);
    let dead = nodes[victim].id.clone();
    let sampler = Sampler::start(Duration::from_millis(50), 100_000, move || {
        redis_ops(redis_port)
    });
    // A baseline of 2 s of steady traffic.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Instant::now();
    nodes[victim].kill9();
    wait_for("the victim's devices elsewhere", LONG, || {
        victims.iter().all(|d| d.node().is_some_and(|n| n != dead))
    })
    .await;
    let all_moved = killed_at.elapsed();
    // The storm's tail: 1 s more.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end = Instant::now();
    let samples = sampler.finish();
    let (baseline_ops, _, _) = ops_rates(
        &samples,
        killed_at - Duration::from_secs(2),
        killed_at,
        Duration::ZERO,
    );
    let (mean, peak_ops_500ms, peak_instantaneous_ops) =
        ops_rates(&samples, killed_at, end, Duration::from_millis(500));
    let extra = (mean - baseline_ops) * (end - killed_at).as_secs_f64();
    let mut buckets: HashMap<u128, usize> = HashMap::new();
    let mut attempts = 0;
    for d in &victims {
        for at in d.state().attempts.iter().filter(|at| **at >= killed_at) {
            attempts += 1;
            *buckets
                .entry((*at - killed_at).as_millis() / 100)
                .or_default() += 1;
        }
    }
    Storm {
        devices: victims.len(),
        all_moved_ms: ms(all_moved),
        attempts,
        peak_attempts_per_100ms: buckets.values().copied().max().unwrap_or(0),
        baseline_ops,
        peak_ops_500ms,
        peak_instantaneous_ops,
        commands_per_move: extra / victims.len().max(1) as f64,
    }
}

/// Four nodes; 150 devices on A (which move only to C) and 150 on B
/// (which move only to D); light traffic. A dies (SIGKILL): its devices come
/// back on C spread over the backoff's first window (1 s, full jitter), so
/// Redis sees a bounded bump, and each move costs Redis a bounded number of
/// commands. For comparison B dies next, its devices without jitter (each
/// waits exactly 1 s): the herd.
#[test]
fn reconnect_storm_after_a_node_loss_is_spread_by_jitter_and_bounded_on_redis() {
    run(async {
        let redis = start_redis(&[]).await;
        let ids = ["st-a", "st-b", "st-c", "st-d"];
        // Heartbeats every second (300 ms elsewhere), so that a lapse under
        // load does not make a node register all its connections again in
        // the middle of the measurement.
        let env = [("HERALD__NODE__HEARTBEAT_MS", "1000")];
        let mut nodes = start_nodes(&ids, &redis.url(), &env).await;
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let users = names("s", 300);
        let specs = |users: &[String]| -> Vec<(String, String, usize)> {
            users
                .iter()
                .map(|u| (u.clone(), "phone".to_owned(), 0))
                .collect()
        };
        let jittered_backoff = Backoff::new(1_000, 8_000);
        let herd_backoff = Backoff::new(1_000, 8_000);
        herd_backoff.jitter.store(false, Ordering::Relaxed);
        let calm = Fleet::start(
            specs(&users[..150]),
            &[addrs[0], addrs[2]],
            jittered_backoff,
        );
        let herd = Fleet::start(specs(&users[150..]), &[addrs[1], addrs[3]], herd_backoff);
        calm.wait_connected(LONG).await;
        herd.wait_connected(LONG).await;
        let messaged: Vec<String> = users.iter().step_by(10).cloned().collect();
        let sender = Sender::start(&addrs[2..], &messaged, Duration::from_millis(20), 50_000);
        sender.wait_accepted(20, LONG).await;

        let jittered = storm(&calm, &mut nodes, 0, redis.port()).await;
        eprintln!("storm with jitter: {jittered:#?}");
        let herded = storm(&herd, &mut nodes, 1, redis.port()).await;
        eprintln!("storm without jitter (the herd): {herded:#?}");

        let at = sender.accepted();
        sender.wait_accepted(at + 20, LONG).await;
        let sent = sender.finish().await;
        let converged = calm
            .converge(&sent, LONG)
            .await
            .zip(herd.converge(&sent, LONG).await);
        let (t1, t2) = (calm.tally(&sent), herd.tally(&sent));
        if let Some(stats) = redis.command("INFO commandstats") {
            eprintln!("{stats}");
        }
        eprintln!(
            "reconnect storm: peak Redis ops/s over 500 ms {:.0} with jitter vs {:.0} without \
             (instantaneous_ops_per_sec {} vs {}; baseline {:.0} / {:.0}); most connects in \
             100 ms: {} of {} vs {} of {} ({} vs {} attempts); all moved after {} vs {} ms; \
             Redis commands per move {:.1} vs {:.1}; caught up {converged:?}; {t1}; {t2}",
            jittered.peak_ops_500ms,
            herded.peak_ops_500ms,
            jittered.peak_instantaneous_ops,
            herded.peak_instantaneous_ops,
            jittered.baseline_ops,
            herded.baseline_ops,
            jittered.peak_attempts_per_100ms,
            jittered.devices,
            herded.peak_attempts_per_100ms,
            herded.devices,
            jittered.attempts,
            herded.attempts,
            jittered.all_moved_ms,
            herded.all_moved_ms,
            jittered.commands_per_move,
            herded.commands_per_move,
        );
        // The jitter spreads the reconnects over the backoff window (1 s:
        // about a tenth per 100 ms, 32-40 of 150 measured), where the herd
        // comes at once. The bound is loose (two thirds) because a stalled
        // test process bunches the attempts it makes after the stall.
        assert!(
            jittered.peak_attempts_per_100ms * 3 <= jittered.devices * 2,
            "{jittered:#?}"
        );
        // Each move costs Redis a bounded number of commands (subscribe,
        // presence, cursors, counts, backlog, the sync): no retry loop.
        assert!(jittered.commands_per_move < 60.0, "{jittered:#?}");
        assert!(herded.commands_per_move < 60.0, "{herded:#?}");
        assert!(t1.exactly_once(), "{t1}");
        assert!(t2.exactly_once(), "{t2}");
        calm.stop().await;
        herd.stop().await;
    });
}

/// After a failover that lost acknowledged appends (asynchronous
/// replication, the replica lagging), the new primary's seq counters are
/// behind what the devices already have: the next messages take the lost
/// messages' seqs. Every connected device is told `reset` (the broker's
/// resync after its reconnect, or a live delivery of a written seq with
/// another id, notices it) and gets everything after its acknowledged
/// cursor again, recognising what it had by id: every message accepted
/// after the failover reaches every device, once.
#[test]
fn messages_accepted_after_a_lossy_failover_reach_every_device() {
    run(async {
        let r = failover_under_traffic("fb", Replication::Async, true, LONG).await;
        assert!(r.lost_from_store > 0, "the failover lost nothing: {r:#?}");
        assert_eq!(
            r.missed_after_failover, 0,
            "{} of {} deliveries of messages accepted after the failover never arrived \
             ({} accepted seqs now hold another message in the store): {}",
            r.missed_after_failover, r.deliveries_after_failover, r.seqs_reused_in_store, r.tally
        );
        let t = &r.tally;
        assert!(t.resets > 0, "no device was reset: {t}");
        assert_eq!((t.doubled, t.gaps, t.seq_reused), (0, 0, 0), "{t}");
    });
}
