//! Admission control on real nodes with real clients: a node past a
//! threshold refuses new upgrades with 503 and `Retry-After`, readiness
//! goes 503, and it takes connections again with hysteresis. The pressure
//! is forced, not hoped for: a connection cap, and a node frozen with
//! SIGSTOP (its event loop's timer fires that much late).

mod common;

use std::time::Duration;

use common::process::ProcessNode;
use common::{eventually, Api, TestNode, WAIT};
use tokio_tungstenite::tungstenite;

/// What a WebSocket handshake that was refused answered.
struct Refused {
    status: u16,
    retry_after: Option<String>,
    body: serde_json::Value,
}

/// A real WebSocket handshake to `url`: `Ok` when it upgraded (the socket
/// is dropped), `Err` with what the node answered instead.
async fn upgrade(url: String) -> Result<(), Refused> {
    let attempt = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake timed out");
    match attempt {
        Ok(_) => Ok(()),
        Err(tungstenite::Error::Http(response)) => Err(Refused {
            status: response.status().as_u16(),
            retry_after: response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                .unwrap_or_default(),
        }),
        Err(other) => panic!("handshake failed: {other}"),
    }
}

async fn status(url: String) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

/// The value of the series `name` (with its labels) in `/metrics`.
async fn metric(node: &impl Api, series: &str) -> f64 {
    let text = node.metrics().await;
    text.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name.starts_with(series.split('{').next().unwrap())
                && series
                    .split(['{', '}', ','])
                    .skip(1)
                    .all(|label| name.contains(label)))
            .then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_connection_threshold_a_node_sheds_until_connections_drop() {
    let mut settings = common::settings();
    settings.admission.enabled = true;
    settings.admission.max_connections = 3;
    settings.admission.reopen_connections = 1;
    settings.admission.hold_ms = 0;
    settings.admission.sample_ms = 10;
    settings.admission.retry_after_secs = 7;
    // Connections are the signal here: a loaded test machine's lag is not.
    settings.admission.lag_ms = 60_000;
    settings.admission.reopen_lag_ms = 59_999;
    let node = TestNode::with(settings).await;
    let mut clients = Vec::new();
    for user in ["a", "b"] {
        clients.push(node.connect(user).await);
    }
    assert_eq!(status(node.http("/readyz")).await, 200);
    // The third reaches the threshold: the next sample turns readiness off.
    clients.push(node.connect("c").await);
    eventually("readiness off at 3 connections", || async {
        status(node.http("/readyz")).await == 503
    })
    .await;
    // The fourth real client is refused before its upgrade.
    let refused = upgrade(node.ws_url(&format!("token={}", node.token("d"))))
        .await
        .expect_err("the 4th upgrade was taken");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.retry_after.as_deref(), Some("7"));
    assert_eq!(
        refused.body["error"]["code"], "unavailable",
        "{}",
        refused.body
    );
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("overloaded (connections)"), "{message}");
    assert_eq!(status(node.http("/readyz")).await, 503);
    let sse = reqwest::get(node.http(&format!("/sse?token={}", node.token("d"))))
        .await
        .unwrap();
    assert_eq!(sse.status(), 503);
    assert_eq!(sse.headers()["retry-after"], "7");
    // Between the two levels (2 open, re-open at 1) it still sheds, however
    // many samples pass.
    clients.pop();
    eventually("3 → 2 connections", || async {
        node.node.hub.connection_count() == 2
    })
    .await;
    let refused = upgrade(node.ws_url(&format!("token={}", node.token("d")))).await;
    assert_eq!(refused.err().map(|r| r.status), Some(503));
    // At the re-open level the next sample opens the gate.
    clients.pop();
    eventually("readiness back", || async {
        status(node.http("/readyz")).await == 200
    })
    .await;
    upgrade(node.ws_url(&format!("token={}", node.token("d"))))
        .await
        .unwrap_or_else(|r| panic!("refused after re-opening: {}", r.status));
    let series = "herald_admission_refusals_total{reason=\"connections\"}";
    assert_eq!(metric(&node, series).await, 3.0);
    let series = "herald_admission_shedding{reason=\"connections\"}";
    assert_eq!(metric(&node, series).await, 0.0);
}

/// A node whose event loop stalls (frozen with SIGSTOP, as a node starved
/// of CPU is) sheds once it runs again, and opens after `hold_ms` of calm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_event_loop_stalled_sheds_then_recovers() {
    let redis = herald_testing::RedisServer::start();
    let node = ProcessNode::start(
        "lagging",
        &redis.url(),
        &[
            ("HERALD__ADMISSION__ENABLED", "true"),
            ("HERALD__ADMISSION__SAMPLE_MS", "20"),
            ("HERALD__ADMISSION__LAG_MS", "300"),
            ("HERALD__ADMISSION__REOPEN_LAG_MS", "100"),
            ("HERALD__ADMISSION__HOLD_MS", "4000"),
            // Its Redis calls stall with it: lag is the signal tested here.
            ("HERALD__ADMISSION__REDIS_MS", "60000"),
            ("HERALD__ADMISSION__REOPEN_REDIS_MS", "59999"),
        ],
    )
    .await;
    let ws = |user: &str| {
        format!(
            "ws://{}/ws?token={}",
            node.addr,
            common::process::token(user)
        )
    };
    eventually("ready before the stall", || async {
        status(node.http("/readyz")).await == 200
    })
    .await;
    node.signal("STOP");
    // How long it stays frozen is the lag it finds when it runs again.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    node.signal("CONT");
    eventually("readiness off after the stall", || async {
        status(node.http("/readyz")).await == 503
    })
    .await;
    let refused = upgrade(ws("during"))
        .await
        .expect_err("an upgrade was taken while shedding");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.retry_after.as_deref(), Some("5"));
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("event_loop_lag"),
        "{}",
        refused.body
    );
    eventually("readiness back after the hold", || async {
        status(node.http("/readyz")).await == 200
    })
    .await;
    eventually("upgrades taken again", || async {
        upgrade(ws("after")).await.is_ok()
    })
    .await;
    let series = "herald_admission_refusals_total{reason=\"event_loop_lag\"}";
    assert!(metric(&node, series).await >= 1.0);
}
