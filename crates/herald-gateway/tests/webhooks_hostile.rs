//! Hostile webhook receivers (issue 22, *Hostile and edge input*): a
//! `herald` process, on a real Redis and on the memory backend, posting to
//! a receiver that hangs, one that redirects, one that answers 500 with a
//! 2 GiB body, and one whose answer's head never ends. Each try ends (at
//! the timeout, at the 3xx, at the body's or the buffer's cap), each event
//! dies once its schedule is over and is listed with its last error, the
//! node's memory does not grow with what it is offered, and sends are
//! answered while every webhook slot is held.
//!
//! A receiver that fails everything for a while (the backlog's bounds):
//! past `max_pending` events are created dead, listed and sent again on
//! request; the circuit breaker opens after failures in a row, lets one
//! probe through per interval, and closes on a 2xx, after which every
//! postponed event is delivered once.
//!
//! Schedules are shortened (`timeout_ms`, `retry_base_ms`,
//! `give_up_after_secs`) so that each test ends in seconds.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use common::process::ProcessNode;
use common::{eventually, eventually_within, Api};
use herald_harness::process::rss_kib;
use herald_testing::RedisServer;
use serde_json::json;
use tokio::io::AsyncReadExt;

/// Where a node under test keeps its data.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Redis,
}

/// A `herald` process posting its webhooks to `url`, with `env` on top of
/// the short schedule every test here shares; the Redis it runs on, if any.
async fn node(
    backend: Backend,
    id: &str,
    url: &str,
    env: &[(&str, &str)],
) -> (ProcessNode, Option<RedisServer>) {
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let mut all = vec![
        ("HERALD__WEBHOOKS__URL", url),
        ("HERALD__WEBHOOKS__SECRET", secret.as_str()),
        ("HERALD__WEBHOOKS__POLL_MS", "50"),
        ("HERALD__WEBHOOKS__RETRY_BASE_MS", "200"),
        // Every try here is meant to reach the receiver: no breaker,
        // but in the tests of the breaker (which set their own).
        ("HERALD__WEBHOOKS__BREAKER_FAILURES", "0"),
    ];
    all.extend_from_slice(env);
    match backend {
        Backend::Redis => {
            let redis = tokio::task::spawn_blocking(RedisServer::start)
                .await
                .unwrap();
            let node = ProcessNode::start(id, &redis.url(), &all).await;
            (node, Some(redis))
        }
        Backend::Memory => {
            all.push(("HERALD__BACKEND", "memory"));
            // Not used by the memory backend; `start` needs one.
            (
                ProcessNode::start(id, "redis://127.0.0.1:1", &all).await,
                None,
            )
        }
    }
}

/// Sends to each of `users` a message that falls back after a second.
async fn send_with_fallback(node: &ProcessNode, users: &[String]) {
    let (status, reply) = node
        .post(json!({"to": {"users": users}, "category": "remind",
            "body": "invoice ready", "fallback_after_secs": 1}))
        .await;
    assert_eq!(status, 202, "{reply}");
}

/// `users` named `prefix-0…`.
fn users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The value of the series `name` whose labels include `label` (`0` when
/// absent), in a node's `/metrics` text.
fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the node lists `n` dead events (over the schedule, longer
/// than the usual wait); returns them.
async fn dead_events(node: &ProcessNode, n: usize, limit: Duration) -> Vec<serde_json::Value> {
    eventually_within(&format!("{n} dead events"), limit, || async {
        node.get("/v1/webhooks/dead").await["events"]
            .as_array()
            .is_some_and(|e| e.len() == n)
    })
    .await;
    node.get("/v1/webhooks/dead").await["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// A receiver that accepts every connection, reads what comes, and never
/// answers; it keeps when each connection opened and when the node closed
/// it.
struct Silent {
    /// (opened, closed) per connection, in accept order.
    connections: Mutex<Vec<(Instant, Option<Instant>)>>,
    /// The most tries hanging at once: connections open at an accept
    /// that were opened less than `young` before it. An older one is at
    /// its timeout: the node freed its slot, and its hang-up may reach
    /// this receiver just after the next try's connect.
    most_hanging: AtomicUsize,
    young: Duration,
}

impl Silent {
    /// The indexes of the connections open now.
    fn open(&self) -> BTreeSet<usize> {
        let connections = self.connections.lock().unwrap();
        (0..connections.len())
            .filter(|&i| connections[i].1.is_none())
            .collect()
    }

    async fn start(young: Duration) -> (Arc<Silent>, String) {
        let silent = Arc::new(Silent {
            connections: Mutex::default(),
            most_hanging: AtomicUsize::new(0),
            young,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = silent.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let index = {
                    let mut connections = me.connections.lock().unwrap();
                    let now = Instant::now();
                    connections.push((now, None));
                    let hanging = (connections.iter())
                        .filter(|(opened, closed)| closed.is_none() && now - *opened < me.young)
                        .count();
                    me.most_hanging.fetch_max(hanging, Ordering::SeqCst);
                    connections.len() - 1
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // Until the node hangs up (0) or resets (an error).
                    while let Ok(1..) = socket.read(&mut buf).await {}
                    me.connections.lock().unwrap()[index].1 = Some(Instant::now());
                });
            }
        });
        (silent, format!("http://{addr}/hook"))
    }
}

/// A receiver that accepts the connection and never answers, on every
/// try, with `max_in_flight` 2 and three events: never more than two tries
/// hang at once, each ends at the try timeout (3 s; counted `timeout`), each
/// event is retried and then dies (give up after 5 s) with `last_error`
/// `timeout`; while both slots hang, ten sends at once are all answered 202
/// before either hanging try ends.
async fn a_receiver_that_never_answers(backend: Backend) {
    let (silent, url) = Silent::start(Duration::from_millis(2_500)).await;
    let (node, _redis) = node(
        backend,
        "wh-hang",
        &url,
        &[
            ("HERALD__WEBHOOKS__TIMEOUT_MS", "3000"),
            ("HERALD__WEBHOOKS__LEASE_MS", "4500"),
            ("HERALD__WEBHOOKS__GIVE_UP_AFTER_SECS", "5"),
            ("HERALD__WEBHOOKS__MAX_IN_FLIGHT", "2"),
        ],
    )
    .await;
    let hung = users("wh-hang", 3);
    send_with_fallback(&node, &hung).await;
    eventually("both webhook slots held by hanging tries", || async {
        silent.open().len() == 2
            && metric(&node.metrics().await, "herald_webhook_in_flight", "") == 2.0
    })
    .await;
    let held = silent.open();

    let sends = (0..10).map(|i| {
        let node = &node;
        async move { node.send_to(&[&format!("wh-hang-other-{i}")], "hi").await }
    });
    let answered_in = Instant::now();
    futures_util::future::join_all(sends).await;
    let answered_in = answered_in.elapsed();
    let still_open = silent.open();
    eprintln!(
        "{backend:?}: 10 sends answered in {answered_in:?} while both webhook slots hung \
         (tries still open: {still_open:?} of {held:?})"
    );
    assert!(
        held.is_subset(&still_open),
        "the sends were answered only after a hanging try ended ({answered_in:?})"
    );

    let dead = dead_events(&node, 3, Duration::from_secs(40)).await;
    for event in &dead {
        assert_eq!(event["last_error"], "timeout", "{event}");
        assert_eq!(event["attempts"], 2, "one retry in 5 s, then dead: {event}");
    }
    let by_user: BTreeSet<&str> = dead.iter().map(|e| e["user"].as_str().unwrap()).collect();
    assert_eq!(by_user, hung.iter().map(String::as_str).collect());
    eventually("every try's connection closed by the node", || async {
        silent.open().is_empty()
    })
    .await;
    let connections = silent.connections.lock().unwrap().clone();
    assert_eq!(connections.len(), 6, "two tries per event");
    for (opened, closed) in &connections {
        let held_for = closed.unwrap() - *opened;
        assert!(
            // From the receiver's accept, which may come a little after
            // the node's connect, to the node's hang-up.
            held_for >= Duration::from_millis(2_500) && held_for < Duration::from_secs(10),
            "a try ended after {held_for:?}, not at its 3 s timeout"
        );
    }
    assert_eq!(
        silent.most_hanging.load(Ordering::SeqCst),
        2,
        "max_in_flight"
    );
    let metrics = node.metrics().await;
    let attempts = |result: &str| {
        metric(
            &metrics,
            "herald_webhook_attempts_total",
            &format!("result=\"{result}\""),
        )
    };
    assert_eq!(attempts("timeout"), 6.0);
    assert_eq!(attempts("2xx") + attempts("5xx") + attempts("error"), 0.0);
    assert_eq!(
        metric(&metrics, "herald_webhook_events_total", "outcome=\"dead\""),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_on_redis() {
    a_receiver_that_never_answers(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_on_memory() {
    a_receiver_that_never_answers(Backend::Memory).await;
}

/// The redirecting receiver: `/hook` answers each request with the next
/// status of [`REDIRECTS`] and a `location` to `/elsewhere`, which would
/// answer 200 and counts its requests.
#[derive(Default)]
struct Redirecting {
    /// The status each try got, by `webhook-id`, in order.
    answered: Mutex<BTreeMap<String, Vec<u16>>>,
    tries: AtomicUsize,
    elsewhere: AtomicUsize,
}

const REDIRECTS: [u16; 4] = [301, 302, 307, 308];

/// Notes that the try with these headers got `status`.
fn record_answer(answered: &Mutex<BTreeMap<String, Vec<u16>>>, headers: &HeaderMap, status: u16) {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    answered.lock().unwrap().entry(id).or_default().push(status);
}

async fn redirect(
    State(receiver): State<Arc<Redirecting>>,
    headers: HeaderMap,
) -> axum::response::Response {
    let n = receiver.tries.fetch_add(1, Ordering::SeqCst);
    let status = REDIRECTS[n % REDIRECTS.len()];
    record_answer(&receiver.answered, &headers, status);
    (
        StatusCode::from_u16(status).unwrap(),
        [("location", "/elsewhere")],
    )
        .into_response()
}

async fn elsewhere(State(receiver): State<Arc<Redirecting>>) -> StatusCode {
    receiver.elsewhere.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK
}

/// A receiver answering 301, 302, 307 and 308 in turn to another URL on
/// every try: no redirect is followed (the other URL never gets a request;
/// each try is a failed one, counted `3xx`), each event is retried, then
/// dies with its last try's status as `last_error`.
async fn a_receiver_that_redirects(backend: Backend) {
    let receiver = Arc::new(Redirecting::default());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(redirect))
        .route("/elsewhere", axum::routing::any(elsewhere))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (node, _redis) = node(
        backend,
        "wh-redirect",
        &format!("http://{addr}/hook"),
        &[
            ("HERALD__WEBHOOKS__TIMEOUT_MS", "1000"),
            ("HERALD__WEBHOOKS__LEASE_MS", "2500"),
            ("HERALD__WEBHOOKS__GIVE_UP_AFTER_SECS", "2"),
        ],
    )
    .await;
    let redirected = users("wh-redirect", 3);
    send_with_fallback(&node, &redirected).await;
    let dead = dead_events(&node, 3, Duration::from_secs(20)).await;
    let answered = receiver.answered.lock().unwrap().clone();
    let mut tries = 0;
    for event in &dead {
        let statuses = &answered[event["id"].as_str().unwrap()];
        assert!(statuses.len() >= 2, "retried: {statuses:?}");
        assert_eq!(event["attempts"], statuses.len(), "{event}");
        assert_eq!(
            event["last_error"],
            format!("HTTP {}", statuses.last().unwrap()),
            "{event}"
        );
        tries += statuses.len();
    }
    assert_eq!(answered.len(), 3, "one webhook-id per event");
    assert_eq!(receiver.elsewhere.load(Ordering::SeqCst), 0, "followed");
    let metrics = node.metrics().await;
    let attempts = |result: &str| {
        metric(
            &metrics,
            "herald_webhook_attempts_total",
            &format!("result=\"{result}\""),
        )
    };
    assert_eq!(attempts("3xx"), tries as f64);
    assert_eq!(attempts("2xx"), 0.0);
    eprintln!("{backend:?}: {tries} redirected tries, none followed, 3 events dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_redirects_on_redis() {
    a_receiver_that_redirects(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_redirects_on_memory() {
    a_receiver_that_redirects(Backend::Memory).await;
}

/// What each response body of the huge receiver offered.
const HUGE: u64 = 2 << 30;
const CHUNK: usize = 64 * 1024;

/// The receiver answering 500 with a [`HUGE`] body, generated as it is
/// written (never buffered): alternately chunked and with a
/// `content-length`. It counts the bytes its bodies handed to the socket
/// and the bodies still being written (one ends when the node hangs up).
#[derive(Default)]
struct Huge {
    tries: AtomicUsize,
    written: AtomicU64,
    writing: AtomicUsize,
}

/// Counts a body as being written until dropped.
struct Writing(Arc<Huge>);

impl Drop for Writing {
    fn drop(&mut self) {
        self.0.writing.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn huge(State(receiver): State<Arc<Huge>>) -> axum::response::Response {
    let n = receiver.tries.fetch_add(1, Ordering::SeqCst);
    receiver.writing.fetch_add(1, Ordering::SeqCst);
    let chunk = bytes::Bytes::from(vec![b'x'; CHUNK]);
    let body =
        futures_util::stream::unfold((HUGE, Writing(receiver.clone())), move |(left, writing)| {
            let chunk = chunk.clone();
            async move {
                if left == 0 {
                    return None;
                }
                writing.0.written.fetch_add(CHUNK as u64, Ordering::SeqCst);
                Some((
                    Ok::<_, std::convert::Infallible>(chunk),
                    (left - CHUNK as u64, writing),
                ))
            }
        });
    let body = axum::body::Body::from_stream(body);
    if n % 2 == 0 {
        (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-length", HUGE.to_string())],
            body,
        )
            .into_response()
    }
}

/// A receiver answering 500 with a 2 GiB body on every try (the try
/// timeout long, 8 s, so that only the body cap can end a try early): each
/// try ends at once as a 500 (counted `5xx`, no `timeout`), the node hangs
/// up on every body (none still written to at the end, a few MiB at most
/// handed to the socket in all), each event is retried and then dies with
/// `HTTP 500`, and the node's RSS, sampled all along, grows by less than
/// 64 MiB while it was offered 2 GiB per try.
async fn a_receiver_that_answers_gigabytes(backend: Backend) {
    let receiver = Arc::new(Huge::default());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(huge))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (node, _redis) = node(
        backend,
        "wh-huge",
        &format!("http://{addr}/hook"),
        &[
            ("HERALD__WEBHOOKS__TIMEOUT_MS", "8000"),
            ("HERALD__WEBHOOKS__LEASE_MS", "10000"),
            ("HERALD__WEBHOOKS__GIVE_UP_AFTER_SECS", "2"),
        ],
    )
    .await;
    // Warm: the node has answered a send and its client is built.
    node.send_to(&["wh-huge-warm"], "warm").await;
    let pid = node.pid();
    let rss = Rss::sample(pid);

    let offered = users("wh-huge", 4);
    send_with_fallback(&node, &offered).await;
    let dead = dead_events(&node, 4, Duration::from_secs(30)).await;
    eventually("the node hung up on every body", || async {
        receiver.writing.load(Ordering::SeqCst) == 0
    })
    .await;
    let (before, peak, after) = rss.stop();
    let tries = receiver.tries.load(Ordering::SeqCst);
    let written = receiver.written.load(Ordering::SeqCst);
    eprintln!(
        "{backend:?}: {tries} tries offered {} GiB each ({} GiB in all); the receiver handed \
         {:.1} MiB in all to the sockets before the node hung up; node RSS {} MiB before, \
         {} MiB peak, {} MiB after",
        HUGE >> 30,
        (HUGE * tries as u64) >> 30,
        written as f64 / (1 << 20) as f64,
        before / 1024,
        peak / 1024,
        after / 1024
    );
    for event in &dead {
        assert_eq!(event["last_error"], "HTTP 500", "{event}");
        assert!(event["attempts"].as_u64().unwrap() >= 2, "retried: {event}");
    }
    let attempts: u64 = dead.iter().map(|e| e["attempts"].as_u64().unwrap()).sum();
    assert_eq!(attempts, tries as u64);
    let metrics = node.metrics().await;
    let counted = |result: &str| {
        metric(
            &metrics,
            "herald_webhook_attempts_total",
            &format!("result=\"{result}\""),
        )
    };
    assert_eq!(counted("5xx"), tries as f64);
    assert_eq!(counted("timeout"), 0.0, "a try waited for the body");
    assert!(
        written < (16 << 20) * tries as u64,
        "{written} bytes read off the receiver in {tries} tries"
    );
    assert!(
        peak.saturating_sub(before) < 64 * 1024,
        "the node's RSS grew from {before} KiB to {peak} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_answers_gigabytes_on_redis() {
    a_receiver_that_answers_gigabytes(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_answers_gigabytes_on_memory() {
    a_receiver_that_answers_gigabytes(Backend::Memory).await;
}

/// A node's RSS, sampled every 20 ms on a thread of its own (the tries come
/// and go faster than a before/after reading would see).
struct Rss {
    before: u64,
    peak: Arc<AtomicU64>,
    sampling: Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<()>,
    pid: u32,
}

impl Rss {
    fn sample(pid: u32) -> Rss {
        let before = rss_kib(pid).unwrap();
        let peak = Arc::new(AtomicU64::new(before));
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = std::thread::spawn({
            let (peak, sampling) = (peak.clone(), sampling.clone());
            move || {
                while sampling.load(Ordering::SeqCst) {
                    if let Ok(rss) = rss_kib(pid) {
                        peak.fetch_max(rss, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Rss {
            before,
            peak,
            sampling,
            sampler,
            pid,
        }
    }

    /// (before, peak, now) in KiB.
    fn stop(self) -> (u64, u64, u64) {
        self.sampling.store(false, Ordering::SeqCst);
        self.sampler.join().unwrap();
        let now = rss_kib(self.pid).unwrap();
        (self.before, self.peak.load(Ordering::SeqCst).max(now), now)
    }
}

/// A receiver that answers a status line and then one header that never
/// ends; it counts the bytes it wrote and the answers still being written.
#[derive(Default)]
struct Flood {
    written: AtomicU64,
    writing: AtomicUsize,
    tries: AtomicUsize,
}

impl Flood {
    async fn start() -> (Arc<Flood>, String) {
        let flood = Arc::new(Flood::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = flood.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let me = me.clone();
                me.tries.fetch_add(1, Ordering::SeqCst);
                me.writing.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut buf = [0u8; 4096];
                    // The request's first bytes, then the answer.
                    let _ = socket.read(&mut buf).await;
                    let head = b"HTTP/1.1 500 Internal Server Error\r\nx-flood: ";
                    let mut ok = socket.write_all(head).await.is_ok();
                    let chunk = vec![b'a'; CHUNK];
                    while ok {
                        ok = socket.write_all(&chunk).await.is_ok();
                        if ok {
                            me.written.fetch_add(CHUNK as u64, Ordering::SeqCst);
                        }
                    }
                    me.writing.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (flood, format!("http://{addr}/hook"))
    }
}

/// A receiver whose answer never ends its head (a status line, then one
/// header written forever), to 32 tries at once (`max_in_flight` 32): each
/// try fails as soon as the head outgrows the client's buffer
/// (`MAX_RESPONSE_BUFFER`, 16 KiB; counted `error`, the node hangs up),
/// the events are retried and then die, and the node's RSS grows by less
/// than 16 MiB (hyper's default buffer, about 400 KiB, cost 25 MiB here).
async fn a_receiver_whose_head_never_ends(backend: Backend) {
    let (flood, url) = Flood::start().await;
    let (node, _redis) = node(
        backend,
        "wh-flood",
        &url,
        &[
            ("HERALD__WEBHOOKS__TIMEOUT_MS", "8000"),
            ("HERALD__WEBHOOKS__LEASE_MS", "10000"),
            ("HERALD__WEBHOOKS__GIVE_UP_AFTER_SECS", "2"),
            ("HERALD__WEBHOOKS__MAX_IN_FLIGHT", "32"),
        ],
    )
    .await;
    node.send_to(&["wh-flood-warm"], "warm").await;
    let rss = Rss::sample(node.pid());
    send_with_fallback(&node, &users("wh-flood", 32)).await;
    let dead = dead_events(&node, 32, Duration::from_secs(30)).await;
    eventually("the node hung up on every answer", || async {
        flood.writing.load(Ordering::SeqCst) == 0
    })
    .await;
    let (before, peak, after) = rss.stop();
    let tries = flood.tries.load(Ordering::SeqCst);
    let written = flood.written.load(Ordering::SeqCst);
    eprintln!(
        "{backend:?}: {tries} tries, 32 at once, answered with an endless head; {:.1} MiB \
         written in all before the node hung up; node RSS {} MiB before, {} MiB peak, {} MiB \
         after; last error: {}",
        written as f64 / (1 << 20) as f64,
        before / 1024,
        peak / 1024,
        after / 1024,
        dead[0]["last_error"]
    );
    for event in &dead {
        assert!(
            event["last_error"].as_str().unwrap().contains("too large"),
            "{event}"
        );
    }
    let attempts: u64 = dead.iter().map(|e| e["attempts"].as_u64().unwrap()).sum();
    assert_eq!(attempts, tries as u64);
    assert!(tries > 32, "retried: {tries} tries");
    let metrics = node.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "herald_webhook_attempts_total",
            "result=\"error\""
        ),
        tries as f64
    );
    assert!(
        peak.saturating_sub(before) < 16 * 1024,
        "the node's RSS grew from {before} KiB to {peak} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_whose_head_never_ends_on_redis() {
    a_receiver_whose_head_never_ends(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_whose_head_never_ends_on_memory() {
    a_receiver_whose_head_never_ends(Backend::Memory).await;
}

/// A receiver answering the status it is set to; the status each try got,
/// by `webhook-id`, in order.
#[derive(Default)]
struct Failing {
    status: std::sync::atomic::AtomicU16,
    answered: Mutex<BTreeMap<String, Vec<u16>>>,
}

impl Failing {
    fn tries(&self) -> usize {
        self.answered.lock().unwrap().values().map(Vec::len).sum()
    }

    /// The ids, each with how many tries got a 2xx.
    fn delivered(&self) -> BTreeMap<String, usize> {
        self.answered
            .lock()
            .unwrap()
            .iter()
            .map(|(id, s)| (id.clone(), s.iter().filter(|s| **s < 300).count()))
            .collect()
    }
}

async fn failing_hook(State(receiver): State<Arc<Failing>>, headers: HeaderMap) -> StatusCode {
    let status = receiver.status.load(Ordering::SeqCst);
    record_answer(&receiver.answered, &headers, status);
    StatusCode::from_u16(status).unwrap()
}

/// Starts a receiver answering `status`; its URL.
async fn failing(status: u16) -> (Arc<Failing>, String) {
    let receiver = Arc::new(Failing::default());
    receiver.status.store(status, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(failing_hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, format!("http://{addr}/hook"))
}

/// `webhooks.max_pending` = 2 and a receiver answering 500: of 5 events,
/// 2 are created pending (and retried), 3 created dead at once, never
/// tried, listed with the reason and counted; one sent again on request is
/// delivered once the receiver mends, with its id.
async fn past_max_pending_events_are_created_dead(backend: Backend) {
    let (receiver, url) = failing(500).await;
    let (node, _redis) = node(
        backend,
        "wh-cap",
        &url,
        &[("HERALD__WEBHOOKS__MAX_PENDING", "2")],
    )
    .await;
    send_with_fallback(&node, &users("cap", 5)).await;
    let dead = dead_events(&node, 3, common::WAIT).await;
    for event in &dead {
        assert_eq!(
            event["last_error"], "backlog full: webhooks.max_pending (2)",
            "{event}"
        );
        assert_eq!(event["attempts"], 0, "{event}");
        assert_eq!(event["event"]["type"], "message.unread");
        assert!(!receiver
            .answered
            .lock()
            .unwrap()
            .contains_key(event["id"].as_str().unwrap()));
    }
    eventually("the backlog and the dead counted", || async {
        let m = node.metrics().await;
        metric(&m, "herald_webhook_dead_total", "reason=\"backlog_full\"") == 3.0
            && metric(&m, "herald_webhook_backlog", "state=\"pending\"") == 2.0
            && metric(&m, "herald_webhook_backlog", "state=\"dead\"") == 3.0
    })
    .await;
    assert_eq!(receiver.answered.lock().unwrap().len(), 2, "only 2 tried");

    receiver.status.store(200, Ordering::SeqCst);
    let id = dead[0]["id"].as_str().unwrap().to_owned();
    let (status, reply) = node
        .post_to(&format!("/v1/webhooks/dead/{id}/retry"), json!(null))
        .await;
    assert_eq!(status, 202, "{reply}");
    eventually("the retried one and the pending ones delivered", || async {
        let delivered = receiver.delivered();
        delivered.len() == 3 && delivered.values().all(|n| *n == 1)
    })
    .await;
    assert!(receiver.delivered().contains_key(&id));
    assert_eq!(dead_events(&node, 2, common::WAIT).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_pending_events_are_created_dead_on_redis() {
    past_max_pending_events_are_created_dead(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_pending_events_are_created_dead_on_memory() {
    past_max_pending_events_are_created_dead(Backend::Memory).await;
}

/// A receiver answering 500: after 3 failed tries in a row the node's
/// breaker opens (metric, counter); while it is open the events come due
/// over and over and are postponed, and the receiver gets one probe a
/// second; answering 200 again, the next probe closes it and each event
/// is delivered exactly once, with the id its failed tries had.
async fn the_breaker_opens_probes_and_closes(backend: Backend) {
    let (receiver, url) = failing(500).await;
    let (node, _redis) = node(
        backend,
        "wh-breaker",
        &url,
        &[
            ("HERALD__WEBHOOKS__BREAKER_FAILURES", "3"),
            ("HERALD__WEBHOOKS__BREAKER_PROBE_SECS", "1"),
            ("HERALD__WEBHOOKS__RETRY_CAP_SECS", "1"),
        ],
    )
    .await;
    send_with_fallback(&node, &users("brk", 4)).await;
    eventually("the breaker open", || async {
        let m = node.metrics().await;
        metric(&m, "herald_webhook_breaker_open", "") == 1.0
            && metric(&m, "herald_webhook_breaker_opens_total", "") == 1.0
    })
    .await;
    let failed: BTreeSet<String> = receiver.answered.lock().unwrap().keys().cloned().collect();
    let (opened, tries_then) = (Instant::now(), receiver.tries());
    // Each event postponed about once a second (the retry cap): 12 take
    // about 3 seconds, in which the receiver gets about 3 probes.
    eventually("events postponed while open", || async {
        metric(
            &node.metrics().await,
            "herald_webhook_events_total",
            "outcome=\"postponed\"",
        ) >= 12.0
    })
    .await;
    let probes = receiver.tries() - tries_then;
    let secs = opened.elapsed().as_secs_f64();
    assert!(
        probes as f64 <= secs.ceil() + 1.0,
        "{probes} tries in {secs:.1} s while open: one probe a second"
    );
    let m = node.metrics().await;
    assert_eq!(metric(&m, "herald_webhook_breaker_open", ""), 1.0);
    assert_eq!(
        metric(&m, "herald_webhook_backlog", "state=\"pending\""),
        4.0
    );

    receiver.status.store(200, Ordering::SeqCst);
    eventually("the breaker closed and every event delivered", || async {
        let m = node.metrics().await;
        metric(&m, "herald_webhook_breaker_open", "") == 0.0
            && metric(&m, "herald_webhook_events_total", "outcome=\"delivered\"") == 4.0
    })
    .await;
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 4, "{delivered:?}");
    assert!(
        delivered.values().all(|n| *n == 1),
        "each once: {delivered:?}"
    );
    let ids: BTreeSet<String> = delivered.keys().cloned().collect();
    assert!(
        failed.is_subset(&ids),
        "the same webhook-ids: {failed:?} {ids:?}"
    );
    let m = node.metrics().await;
    assert_eq!(metric(&m, "herald_webhook_breaker_opens_total", ""), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_probes_and_closes_on_redis() {
    the_breaker_opens_probes_and_closes(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_probes_and_closes_on_memory() {
    the_breaker_opens_probes_and_closes(Backend::Memory).await;
}
