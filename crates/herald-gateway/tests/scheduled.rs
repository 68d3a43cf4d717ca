//! Scheduled sends (`deliver_at`) through the server API: real `herald`
//! processes on a real Redis, WebSocket receivers, the status and cancel
//! routes, and a node killed with SIGKILL while it holds due sends.

mod common;

use std::time::Duration;

use common::now_ms;
use common::process::{holder_and_edge, ProcessNode, SHORT_LEASE};
use common::{Api, API_KEY, WAIT};
use futures_util::future::join_all;
use herald_testing::RedisServer;
use serde_json::json;

/// DELETE with the API key; status and JSON body.
async fn delete(node: &impl Api, path: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .delete(node.http(path))
        .bearer_auth(API_KEY)
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// Schedules a message; asserts 202 `{scheduled, deliver_at}`; the id.
async fn schedule(node: &impl Api, body: serde_json::Value) -> String {
    let at = body["deliver_at"].clone();
    let (status, reply) = node.post(body).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["deliver_at"], at, "{reply}");
    assert_eq!(reply.as_object().unwrap().len(), 2, "{reply}");
    reply["scheduled"]
        .as_str()
        .expect("scheduled id")
        .to_owned()
}

/// A send scheduled on one node reaches a tab on the other within a
/// second of its time, once; its status reads pending then delivered on
/// either node; a delivered send cannot be cancelled (409), a pending one
/// can (200) and never arrives; an idempotent retry is the same schedule;
/// bad times are 400s naming `deliver_at`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_send_arrives_once_at_its_time_on_another_node() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    let mut tab = b.connect("sched-alice").await;
    // Far enough ahead for the checks before it on a loaded machine.
    let at = now_ms() + 3_000;
    let body = json!({"to": {"users": ["sched-alice"]}, "category": "remind",
        "body": "at nine", "deliver_at": at, "idempotency_key": "nine"});
    let id = schedule(&a, body.clone()).await;
    assert_eq!(schedule(&b, body).await, id, "a retry: the first outcome");
    let cancelled = schedule(
        &a,
        json!({"to": {"users": ["sched-alice"]}, "category": "remind",
            "body": "never", "deliver_at": at + 200}),
    )
    .await;
    let status = b.get(&format!("/v1/scheduled/{id}")).await;
    assert_eq!(
        status,
        json!({"id": id, "state": "pending", "deliver_at": at})
    );
    let (code, reply) = delete(&b, &format!("/v1/scheduled/{cancelled}")).await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["state"], "cancelled");
    tab.quiet(Duration::from_millis(500)).await;

    let m = tab.message().await;
    let arrived = now_ms();
    assert_eq!((m.body.as_str(), m.id.to_string()), ("at nine", id.clone()));
    assert!(arrived >= at - 50, "early: {arrived} < {at}");
    assert!(arrived <= at + 1_000, "late: {} ms", arrived - at);
    assert_eq!(
        (m.ts.unix_timestamp_nanos() / 1_000_000) as i64,
        at,
        "stamped with its time"
    );
    tab.quiet(Duration::from_millis(700)).await;
    let status = a.get(&format!("/v1/scheduled/{id}")).await;
    assert_eq!(status["state"], "delivered", "{status}");
    let (code, reply) = delete(&a, &format!("/v1/scheduled/{id}")).await;
    assert_eq!(code, 409, "{reply}");
    let status = a.get(&format!("/v1/scheduled/{cancelled}")).await;
    assert_eq!(status["state"], "cancelled", "{status}");
    let (code, _) = delete(&a, &format!("/v1/scheduled/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(code, 404);
    let bad = a.get("/v1/scheduled/not-an-id").await;
    assert_eq!(bad["error"]["code"], "invalid_field", "{bad}");

    let year = 366 * 24 * 3600 * 1000_i64;
    for at in [now_ms() - 1_000, now_ms() + year + 60_000] {
        let (status, reply) = a
            .post(
                json!({"to": {"users": ["sched-alice"]}, "category": "remind",
                "body": "x", "deliver_at": at}),
            )
            .await;
        assert_eq!(status, 400, "{reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("deliver_at: "),
            "{reply}"
        );
    }
    // A batch mixes both: each result in its own shape.
    let (status, reply) = a
        .post_to(
            "/v1/messages/batch",
            json!({"messages": [
                {"to": {"users": ["sched-bob"]}, "category": "remind", "body": "now"},
                {"to": {"users": ["sched-bob"]}, "category": "remind", "body": "later",
                 "deliver_at": now_ms() + 60_000},
            ]}),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    assert!(reply["results"][0]["stored"].is_array(), "{reply}");
    assert!(reply["results"][1]["scheduled"].is_string(), "{reply}");
}

/// The state of each scheduled send, read 100 at a time.
async fn states(node: &impl Api, ids: &[String]) -> Vec<String> {
    let mut states = Vec::new();
    for chunk in ids.chunks(100) {
        states.extend(join_all(chunk.iter().map(|id| state(node, id))).await);
    }
    states
}

/// One scheduled send's state. A Redis call that timed out on a loaded
/// machine answers 503 `unavailable` ("try again"): asked again, as a
/// client would; any other answer without a state fails the test.
async fn state(node: &impl Api, id: &str) -> String {
    for attempt in 1..=20 {
        let status = node.get(&format!("/v1/scheduled/{id}")).await;
        if let Some(state) = status["state"].as_str() {
            return state.to_owned();
        }
        assert_eq!(status["error"]["code"], "unavailable", "{status}");
        tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
    }
    panic!("scheduled/{id} stayed unavailable");
}

/// 4,000 sends due at the same moment; the node holding them is killed
/// with SIGKILL once its first one arrives, half-way through. A node
/// started afterwards takes them over once the lease ends: every receiver
/// has its message exactly once and every status reads delivered. A tab
/// on a third node (which runs no scheduler) sees its message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_held_by_a_killed_node_are_delivered_once_by_another() {
    const USERS: usize = 4_000;
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let (mut holder, edge) = holder_and_edge(&redis.url()).await;
    let users: Vec<String> = (0..USERS).map(|i| format!("due-{i:04}")).collect();
    let mut first = edge.connect(&users[0]).await;
    let mut last = edge.connect(&users[USERS - 1]).await;
    let at = now_ms() + 5_000;
    let mut ids = Vec::with_capacity(USERS);
    for chunk in users.chunks(1_000) {
        let messages: Vec<_> = chunk
            .iter()
            .map(|u| {
                json!({"to": {"users": [u]}, "category": "remind", "body": "due",
                "deliver_at": at})
            })
            .collect();
        let (status, reply) = edge
            .post_to("/v1/messages/batch", json!({ "messages": messages }))
            .await;
        assert_eq!(status, 202, "{reply}");
        for r in reply["results"].as_array().unwrap() {
            ids.push(r["scheduled"].as_str().unwrap().to_owned());
        }
    }
    assert!(now_ms() < at, "scheduling took too long to test the kill");
    // Either watcher's message means the holder is delivering: kill it.
    let first_came = tokio::select! {
        _ = first.message() => true,
        _ = last.message() => false,
    };
    holder.kill9();
    let at_kill = states(&edge, &ids).await;
    let pending = at_kill.iter().filter(|s| *s == "pending").count();
    assert!(pending > 0, "the holder finished before the kill");
    let _taker = ProcessNode::start("taker", &redis.url(), &SHORT_LEASE).await;
    common::eventually("every send delivered", || async {
        states(&edge, &ids).await.iter().all(|s| s == "delivered")
    })
    .await;
    for chunk in users.chunks(100) {
        let reads = chunk.iter().map(|u| {
            let edge = &edge;
            async move { edge.get(&format!("/v1/users/{u}/inbox?limit=10")).await }
        });
        for (user, inbox) in chunk.iter().zip(join_all(reads).await) {
            let messages = inbox["messages"].as_array().unwrap();
            assert_eq!(messages.len(), 1, "{user}: {inbox}");
            assert_eq!(inbox["last_seq"], 1, "{user}: {inbox}");
        }
    }
    let other = if first_came { &mut last } else { &mut first };
    assert_eq!(other.message().await.body, "due");
    for tab in [&mut first, &mut last] {
        tab.quiet(common::process::SHORT).await;
    }
}
