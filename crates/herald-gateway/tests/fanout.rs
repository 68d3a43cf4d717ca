//! Publishing to topics through the server API: real `herald` processes on
//! a real Redis (and one in-memory node), WebSocket receivers, the job API,
//! and a node killed with SIGKILL half-way through a job.

mod common;

use std::time::Duration;

use common::process::ProcessNode;
use common::{Api, TestNode};
use futures_util::future::join_all;
use herald_testing::RedisServer;
use serde_json::json;

/// Subscribes each user to `topic` through the API, many at once.
async fn subscribe_all(node: &impl Api, users: &[String], topic: &str) {
    let client = reqwest::Client::new();
    for chunk in users.chunks(100) {
        let puts = chunk.iter().map(|u| {
            client
                .put(node.http(&format!("/v1/users/{u}/topics/{topic}")))
                .bearer_auth(common::API_KEY)
                .send()
        });
        for resp in join_all(puts).await {
            assert_eq!(resp.unwrap().status(), 200);
        }
    }
}

/// Publishes, asserting 202; returns (job id, subscribers).
async fn publish(node: &impl Api, topic: &str, body: serde_json::Value) -> (String, u64) {
    let (status, reply) = node
        .post_to(&format!("/v1/topics/{topic}/messages"), body)
        .await;
    assert_eq!(status, 202, "{reply}");
    (
        reply["job"].as_str().expect("job id").to_owned(),
        reply["subscribers"].as_u64().expect("subscribers"),
    )
}

/// Polls `GET /v1/jobs/{id}` until `check` holds; the last status.
async fn job_until(
    node: &impl Api,
    job: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = node.get(&format!("/v1/jobs/{job}")).await;
        if check(&status) {
            return status;
        }
        assert_ne!(status["state"], "failed", "{status}");
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each user's inbox holds exactly one message with `body`.
async fn each_has_one(node: &impl Api, users: &[String], body: &str) {
    for chunk in users.chunks(100) {
        let reads = chunk.iter().map(|u| async move {
            (
                u,
                node.get(&format!("/v1/users/{u}/messages?limit=10")).await,
            )
        });
        for (user, page) in join_all(reads).await {
            let bodies: Vec<&str> = page["messages"]
                .as_array()
                .unwrap_or_else(|| panic!("{user}: {page}"))
                .iter()
                .map(|m| m["body"].as_str().unwrap())
                .collect();
            assert_eq!(bodies, [body], "{user}");
        }
    }
}

/// Subscribers on both nodes get the publish live, once; the publisher, a
/// non-subscriber and a late subscriber get nothing; the job API answers
/// on either node; a retry with the key is the same job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_reaches_the_subscribers_at_publish_time_on_every_node() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    let fans: Vec<String> = ["fan-1", "fan-2", "fan-3"].map(String::from).into();
    subscribe_all(&a, &fans, "user:author").await;
    subscribe_all(&a, &["author".to_owned()], "user:author").await;
    let mut tabs = vec![a.connect("fan-1").await, b.connect("fan-2").await];
    let mut author = b.connect("author").await;
    let mut stranger = a.connect("stranger").await;
    let body = json!({"from": "author", "title": "New post", "body": "read it",
        "idempotency_key": "post-1"});
    let (job, subscribers) = publish(&a, "user:author", body.clone()).await;
    assert_eq!(subscribers, 3);
    subscribe_all(&b, &["late".to_owned()], "user:author").await;
    for tab in &mut tabs {
        let m = tab.message().await;
        assert_eq!(
            (m.body.as_str(), m.category.as_str()),
            ("read it", "resource_publish")
        );
        assert_eq!(m.from.as_deref(), Some("author"));
        tab.quiet(common::process::SHORT).await;
    }
    let status = job_until(&b, &job, |s| s["state"] == "done").await;
    assert_eq!(
        status,
        json!({"id": job, "topic": "user:author", "state": "done", "total": 3, "done": 3})
    );
    assert_eq!(publish(&b, "user:author", body).await, (job.clone(), 3));
    each_has_one(&b, &fans, "read it").await;
    author.quiet(common::process::SHORT).await;
    stranger.quiet(common::process::SHORT).await;
    let late = a.get("/v1/users/late/messages").await;
    assert_eq!(late["messages"], json!([]), "{late}");
    // Bad input is a clear 4xx.
    let (status, reply) = a
        .post_to(
            "/v1/topics/article:1/messages",
            json!({"category": "mailbox", "body": "x"}),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = a
        .post_to(
            "/v1/topics/article:1/messages",
            json!({"body": "x", "extra": 1}),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    let missing = a.get(&format!("/v1/jobs/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(missing["error"]["code"], "not_found", "{missing}");
    let bad = a.get("/v1/jobs/not-a-job").await;
    assert_eq!(bad["error"]["code"], "invalid_field", "{bad}");
}

/// The node working on a job to 3,000 subscribers is killed with SIGKILL
/// half-way; a node started afterwards takes the job over once its claim
/// timeout passes, and every subscriber has the message exactly once. A
/// receiver connected to a third node (which runs no worker) sees it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_node_is_killed_half_way_completes_exactly_once() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let slow = [
        ("HERALD__FANOUT__RATE_PER_SEC", "2000"),
        ("HERALD__FANOUT__CHUNK", "100"),
        ("HERALD__FANOUT__CLAIM_AFTER_SECS", "1"),
    ];
    let mut worker = ProcessNode::start("worker", &redis.url(), &slow).await;
    let edge =
        ProcessNode::start("edge", &redis.url(), &[("HERALD__FANOUT__WORKER", "false")]).await;
    let users: Vec<String> = (0..3_000).map(|i| format!("sub-{i:04}")).collect();
    subscribe_all(&edge, &users, "article:7").await;
    let mut watcher = edge.connect("sub-2999").await;
    let (job, total) = publish(&worker, "article:7", json!({"body": "breaking"})).await;
    assert_eq!(total, 3_000);
    let status = job_until(&edge, &job, |s| s["done"].as_u64() >= Some(600)).await;
    worker.kill9();
    let done_at_kill = status["done"].as_u64().unwrap();
    assert!(done_at_kill < 3_000, "finished before the kill: {status}");
    let taker = ProcessNode::start("taker", &redis.url(), &slow[1..]).await;
    let status = job_until(&taker, &job, |s| s["state"] == "done").await;
    assert_eq!(
        (status["total"].as_u64(), status["done"].as_u64()),
        (Some(3_000), Some(3_000))
    );
    each_has_one(&edge, &users, "breaking").await;
    let m = watcher.message().await;
    assert_eq!(m.body, "breaking");
    watcher.quiet(common::process::SHORT).await;
}

/// The in-memory backend runs jobs in process: one node, same API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_on_the_memory_backend() {
    let node = TestNode::start().await;
    let users: Vec<String> = (0..50).map(|i| format!("m-{i}")).collect();
    subscribe_all(&node, &users, "article:9").await;
    let mut tab = node.connect("m-7").await;
    let (job, total) = publish(
        &node,
        "article:9",
        json!({"body": "hello", "category": "system"}),
    )
    .await;
    assert_eq!(total, 50);
    let m = tab.message().await;
    assert_eq!((m.body.as_str(), m.category.as_str()), ("hello", "system"));
    job_until(&node, &job, |s| s["state"] == "done" && s["done"] == 50).await;
    each_has_one(&node, &users, "hello").await;
}
