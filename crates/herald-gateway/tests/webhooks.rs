//! Unread fallback webhooks end to end: a real local HTTP receiver (an
//! axum server in the test) behind nodes on the memory backend and on a
//! real Redis — retries after 500s, a read message raising none, the
//! signatures checked with the official `standardwebhooks` package (PyPI),
//! the dead-letter API, and a node killed with SIGKILL while it holds due
//! events: another node delivers them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use common::process::ProcessNode;
use common::{eventually, Api, TestNode, API_KEY, WAIT};
use herald_testing::RedisServer;
use serde_json::json;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// The receiver: records every request; answers `status`, or, while
/// `hang` is set, never (until the test ends).
#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<Received>>,
    status: AtomicU16,
    hang: AtomicBool,
    /// A 302 to the receiver itself for the first request, once.
    redirect_once: AtomicBool,
    /// Answer 200 with a body that never ends (a receiver gone mad).
    endless: AtomicBool,
}

impl Receiver {
    fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }
}

async fn hook(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    receiver.requests.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
    });
    if receiver.redirect_once.swap(false, Ordering::SeqCst) {
        return (StatusCode::FOUND, [("location", "/hook")]).into_response();
    }
    if receiver.endless.load(Ordering::SeqCst) {
        let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        let body = futures_util::stream::repeat(Ok::<_, std::convert::Infallible>(chunk));
        return (StatusCode::OK, axum::body::Body::from_stream(body)).into_response();
    }
    if receiver.hang.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    StatusCode::from_u16(receiver.status.load(Ordering::SeqCst))
        .unwrap()
        .into_response()
}

/// Starts a receiver answering `status`; its URL.
async fn receiver(status: u16) -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver::default());
    receiver.status.store(status, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, format!("http://{addr}/hook"))
}

fn secret(byte: u8) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    )
}

/// Settings of an in-process node on the memory backend posting to `url`:
/// fast polls and retries.
fn settings(url: &str) -> herald_gateway::Settings {
    let mut s = common::settings();
    s.webhooks.url = url.into();
    s.webhooks.secret = vec![secret(1), secret(2)];
    s.webhooks.poll_ms = 50;
    s.webhooks.retry_base_ms = 200;
    s.webhooks.timeout_ms = 1_000;
    s.webhooks.lease_ms = 5_000;
    s.categories.insert(
        "remind".into(),
        herald_gateway::settings::CategorySettings {
            fallback_after_secs: 1,
            ..Default::default()
        },
    );
    s
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Verifies `requests` with the official `standardwebhooks` package
/// against `secret`; skipped (with a message) where python3 is missing.
fn verify_with_the_official_library(requests: &[Received], secret: &str) {
    let list: Vec<_> = requests
        .iter()
        .map(|r| {
            json!({"id": r.id, "timestamp": r.timestamp.parse::<i64>().unwrap(),
                "signature": r.signature, "body": r.body})
        })
        .collect();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/webhooks/verify.py"
    );
    let child = std::process::Command::new("python3")
        .arg(script)
        .arg(secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: python3 is missing, signatures not verified with standardwebhooks");
            return;
        }
        Err(e) => panic!("python3: {e}"),
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&list).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "standardwebhooks refused a signature ({}); install it with pip install -r crates/herald-gateway/tests/fixtures/webhooks/requirements.txt: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("verified {}", requests.len()));
}

/// Sends `body` to `users` (category remind, which falls back after 1 s);
/// the message id.
async fn send(node: &impl Api, users: &[&str], extra: serde_json::Value) -> String {
    let mut body = json!({"to": {"users": users}, "category": "remind", "body": "invoice ready"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, reply) = node.post(body).await;
    assert_eq!(status, 202, "{reply}");
    reply["id"].as_str().unwrap().to_owned()
}

/// A message left unread raises one event, POSTed to the receiver after
/// its delay: the first two tries get 500 and are retried with the same
/// `webhook-id` and body, the third is delivered; the receiver who read it
/// before gets none. Every try is signed with both secrets, each verified
/// by the official library. An unknown field next to `fallback_after_secs`
/// is still refused, and a bad value is a 400 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_message_raises_one_signed_webhook_with_retries() {
    let (receiver, url) = receiver(500).await;
    let node = TestNode::with(settings(&url)).await;
    let sent_at = now_ms();
    let id = send(&node, &["wh-alice", "wh-bob"], json!({})).await;
    let (status, reply) = node
        .post_to(
            "/v1/users/wh-bob/mark",
            json!({"state": "read", "ids": [id]}),
        )
        .await;
    assert_eq!((status, &reply["changed"]), (200, &json!(1)), "{reply}");

    eventually("two failed tries", || async {
        receiver.requests().len() >= 2
    })
    .await;
    receiver.status.store(204, Ordering::SeqCst);
    let webhooks = node.node.webhooks.clone().unwrap();
    eventually("the event delivered and bob's dropped", || async {
        let b = webhooks.backlog().await.unwrap();
        b.armed == 0 && b.pending == 0
    })
    .await;
    let tries = receiver.requests();
    assert_eq!(tries.len(), 3, "{tries:?}");
    assert!(tries
        .iter()
        .all(|t| t.id == tries[0].id && t.body == tries[0].body));
    assert!(tries.iter().all(|t| t.signature.split(' ').count() == 2));
    let body: serde_json::Value = serde_json::from_str(&tries[0].body).unwrap();
    assert_eq!(body["type"], "message.unread");
    assert_eq!(body["data"]["user"], "wh-alice");
    assert_eq!(body["data"]["message"]["id"], id.as_str());
    assert_eq!(body["data"]["message"]["category"], "remind");
    assert!(body["data"]["unread_for_secs"].as_i64().unwrap() >= 1);
    let first_try: i64 = tries[0].timestamp.parse().unwrap();
    assert!(
        first_try * 1000 >= sent_at + 1_000 - 1_000,
        "not before its delay"
    );
    for s in [secret(1), secret(2)] {
        verify_with_the_official_library(&tries, &s);
    }

    for (extra, field) in [
        (json!({"fallback_after_secs": 0}), "fallback_after_secs"),
        (json!({"fallback_after_secs": -5}), "fallback_after_secs"),
        (json!({"fallback_afters": 5}), "fallback_afters"),
    ] {
        let mut body = json!({"to": {"users": ["wh-x"]}, "category": "remind", "body": "b"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, reply) = node.post(body).await;
        assert_eq!(status, 400, "{extra}: {reply}");
        assert!(reply.to_string().contains(field), "{extra}: {reply}");
    }
}

/// A receiver that redirects, hangs past the timeout, then answers 500:
/// each try fails, the event dies once its schedule is over and is listed
/// by `GET /v1/webhooks/dead` with its last error; `POST …/retry` sends it
/// again (202) and, the receiver mended, it is delivered and leaves the
/// list. A retry of an unknown event is 404, of a bad id 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_event_is_listed_and_sent_again_on_request() {
    let (receiver, url) = receiver(500).await;
    receiver.redirect_once.store(true, Ordering::SeqCst);
    let mut s = settings(&url);
    s.webhooks.give_up_after_secs = 2;
    s.webhooks.timeout_ms = 300;
    s.webhooks.lease_ms = 2_000;
    let node = TestNode::with(s).await;
    send(&node, &["wh-carol"], json!({"fallback_after_secs": 1})).await;
    eventually("the event dead", || async {
        let page = node.get("/v1/webhooks/dead").await;
        page["events"].as_array().is_some_and(|e| e.len() == 1)
    })
    .await;
    let page = node.get("/v1/webhooks/dead?limit=10").await;
    let dead = &page["events"][0];
    assert_eq!(dead["user"], "wh-carol");
    assert_eq!(dead["last_error"], "HTTP 500");
    assert_eq!(dead["event"]["type"], "message.unread");
    assert!(dead["attempts"].as_u64().unwrap() >= 2, "{dead}");
    assert!(page.get("next").is_none(), "{page}");
    let tries = receiver.requests();
    assert_eq!(tries.len() as u64, dead["attempts"].as_u64().unwrap());
    let id = dead["id"].as_str().unwrap().to_owned();
    let after = node.get(&format!("/v1/webhooks/dead?after={id}")).await;
    assert_eq!(after["events"], json!([]));

    receiver.status.store(200, Ordering::SeqCst);
    let (status, reply) = node
        .post_to(&format!("/v1/webhooks/dead/{id}/retry"), json!(null))
        .await;
    assert_eq!(
        (status, &reply["state"]),
        (202, &json!("pending")),
        "{reply}"
    );
    let (status, _) = node
        .post_to(&format!("/v1/webhooks/dead/{id}/retry"), json!(null))
        .await;
    assert_eq!(status, 409, "pending, not dead");
    eventually("the retried event delivered", || async {
        node.get("/v1/webhooks/dead").await["events"] == json!([])
            && receiver.requests().len() == tries.len() + 1
    })
    .await;
    assert_eq!(receiver.requests().last().unwrap().id, id);
    let unknown = uuid::Uuid::new_v4();
    let (status, _) = node
        .post_to(&format!("/v1/webhooks/dead/{unknown}/retry"), json!(null))
        .await;
    assert_eq!(status, 404);
    let (status, _) = node
        .post_to("/v1/webhooks/dead/nope/retry", json!(null))
        .await;
    assert_eq!(status, 400);
    let limit = reqwest::Client::new()
        .get(node.http("/v1/webhooks/dead?limit=0"))
        .bearer_auth(API_KEY)
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    assert_eq!(limit.status().as_u16(), 400);
}

/// A receiver that answers 200 with a body that never ends: the try reads
/// no more than its cap and counts as delivered (well within the timeout),
/// instead of reading gigabytes or timing out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_response_body_is_not_read() {
    let (receiver, url) = receiver(200).await;
    receiver.endless.store(true, Ordering::SeqCst);
    let mut s = settings(&url);
    s.webhooks.timeout_ms = 5_000;
    s.webhooks.lease_ms = 7_000;
    let node = TestNode::with(s).await;
    send(&node, &["wh-dave"], json!({})).await;
    let webhooks = node.node.webhooks.clone().unwrap();
    eventually("the event delivered", || async {
        let b = webhooks.backlog().await.unwrap();
        b.armed == 0 && b.pending == 0
    })
    .await;
    assert_eq!(receiver.requests().len(), 1, "one try, delivered");
}

/// Two `herald` processes on one Redis. Node A takes 20 due events and is
/// killed with SIGKILL while its tries hang at the receiver (a send to A
/// meanwhile is answered at once, not after the tries' timeout); node B,
/// started after, takes them once A's lease ends and delivers each, with
/// the `webhook-id` A used; the receiver, deduping by that id, gets each
/// event once delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_killed_node_are_delivered_by_another() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let (receiver, url) = receiver(200).await;
    receiver.hang.store(true, Ordering::SeqCst);
    let secrets = format!("{},{}", secret(1), secret(2));
    let env = [
        ("HERALD__WEBHOOKS__URL", url.as_str()),
        ("HERALD__WEBHOOKS__SECRET", secrets.as_str()),
        ("HERALD__WEBHOOKS__POLL_MS", "50"),
        ("HERALD__WEBHOOKS__TIMEOUT_MS", "4000"),
        ("HERALD__WEBHOOKS__LEASE_MS", "6000"),
    ];
    let mut a = ProcessNode::start("wh-a", &redis.url(), &env).await;
    let users: Vec<String> = (0..20).map(|i| format!("wh-kill-{i}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let id = send(&a, &refs, json!({"fallback_after_secs": 1})).await;
    eventually("node A's tries hanging at the receiver", || async {
        receiver.requests().len() >= 20
    })
    .await;
    // A receiver that hangs holds A's webhook slots, not its sends.
    let started = std::time::Instant::now();
    send(&a, &["wh-kill-other"], json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a send took {:?} while webhooks hung",
        started.elapsed()
    );
    a.kill9();
    let held: BTreeMap<String, String> = receiver
        .requests()
        .into_iter()
        .map(|r| (r.id, r.body))
        .collect();
    assert_eq!(held.len(), 20, "one event per receiver");
    receiver.hang.store(false, Ordering::SeqCst);
    let before = receiver.requests().len();

    let b = ProcessNode::start("wh-b", &redis.url(), &env).await;
    eventually("node B delivering every event", || async {
        let ids: BTreeSet<String> = receiver.requests()[before..]
            .iter()
            .map(|r| r.id.clone())
            .collect();
        ids.len() == 20
    })
    .await;
    let after = receiver.requests()[before..].to_vec();
    for r in &after {
        assert_eq!(
            held.get(&r.id),
            Some(&r.body),
            "the same event, id and body"
        );
    }
    let body: serde_json::Value = serde_json::from_str(&after[0].body).unwrap();
    assert_eq!(body["data"]["message"]["id"], id.as_str());
    verify_with_the_official_library(&after, &secret(2));
    eventually("node B counting 20 delivered", || async {
        let metrics = reqwest::get(b.http("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics.contains("herald_webhook_events_total{outcome=\"delivered\",node=\"wh-b\"} 20")
    })
    .await;
}

/// An act raises one `message.action` event, POSTed at once, signed like
/// every event and verified by the official library; a second act (refused
/// `already_acted`) raises none, and a 500 is retried with the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_act_raises_one_signed_message_action_webhook() {
    let (receiver, url) = receiver(500).await;
    let node = TestNode::with(settings(&url)).await;
    let id = send(
        &node,
        &["wh-actor"],
        json!({"category": "system", "actions": [{"id": "accept", "label": "Accept", "url": "https://example.com/a"}, {"id": "decline", "label": "Decline"}]}),
    )
    .await;
    let act = |action: &'static str| {
        let id = id.clone();
        let node = &node;
        async move {
            node.post_to(
                "/v1/users/wh-actor/act",
                json!({"message": id, "action": action}),
            )
            .await
        }
    };
    let (status, reply) = act("accept").await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = act("decline").await;
    assert_eq!(
        (status, &reply["error"]["code"]),
        (409, &json!("already_acted"))
    );
    eventually("a failed first try", || async {
        !receiver.requests().is_empty()
    })
    .await;
    receiver.status.store(200, Ordering::SeqCst);
    let webhooks = node.node.webhooks.clone().unwrap();
    eventually("the action event delivered, the other dropped", || async {
        let b = webhooks.backlog().await.unwrap();
        b.armed == 0 && b.pending == 0
    })
    .await;
    let tries = receiver.requests();
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert!(tries
        .iter()
        .all(|t| t.id == tries[0].id && t.body == tries[0].body));
    let body: serde_json::Value = serde_json::from_str(&tries[0].body).unwrap();
    assert_eq!(body["type"], "message.action");
    assert_eq!(body["data"]["user"], "wh-actor");
    assert_eq!(
        body["data"]["action"],
        json!({"id": "accept", "label": "Accept", "url": "https://example.com/a"})
    );
    assert_eq!(body["data"]["message"]["id"], id.as_str());
    assert_eq!(body["data"]["message"]["acted"], "accept");
    verify_with_the_official_library(&tries, &secret(1));
    verify_with_the_official_library(&tries, &secret(2));
}

/// An announcement (`to.all`, stored once) with a fallback: the users who
/// connected while webhooks were on are its audience; the one who left it
/// unread gets a signed webhook, the one who read it none, a user who never
/// connected none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_announcement_raises_a_webhook_per_connected_user() {
    let (receiver, url) = receiver(200).await;
    let node = TestNode::with(settings(&url)).await;
    let unread = node.connect("wh-ann-unread").await;
    let read = node.connect("wh-ann-read").await;
    let webhooks = node.node.webhooks.clone().unwrap();
    let (status, reply) = node
        .post(json!({"to": {"all": true}, "category": "announcement",
            "body": "maintenance tonight", "fallback_after_secs": 1}))
        .await;
    assert_eq!(status, 202, "{reply}");
    let id = reply["id"].as_str().unwrap().to_owned();
    let (status, reply) = node
        .post_to(
            "/v1/users/wh-ann-read/mark",
            json!({"state": "read", "ids": [id]}),
        )
        .await;
    assert_eq!((status, &reply["changed"]), (200, &json!(1)), "{reply}");
    eventually("the announcement's events ended", || async {
        let b = webhooks.backlog().await.unwrap();
        b.armed == 0 && b.pending == 0 && !receiver.requests().is_empty()
    })
    .await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let body: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(body["data"]["user"], "wh-ann-unread");
    assert_eq!(body["data"]["message"]["id"], id.as_str());
    assert_eq!(body["data"]["message"]["stream"], "all");
    verify_with_the_official_library(&requests, &secret(1));
    drop((unread, read));
}
