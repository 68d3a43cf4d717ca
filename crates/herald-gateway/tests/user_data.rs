//! A user's data over the server API (`docs/security.md`, *Erasure*):
//! the export and the erasure across two real `herald` processes on one
//! Redis — the erased user's connections on both nodes closed with 4003,
//! counts and presence no longer listing them, the peer keeping their side,
//! a second DELETE erasing nothing — and a 10,000-message export streamed
//! by an in-memory node.

mod common;

use common::process::ProcessNode;
use common::{eventually, Api, TestNode, API_KEY, WAIT};
use herald_protocol::ServerFrame;
use herald_testing::RedisServer;
use serde_json::{json, Value};
use uuid::Uuid;

fn user(name: &str) -> String {
    format!("{name}-{}", Uuid::new_v4().simple())
}

/// `method` on `path` with the API key; status and JSON body.
async fn call(node: &impl Api, method: reqwest::Method, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, node.http(path))
        .bearer_auth(API_KEY)
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasure_closes_the_users_connections_on_every_node_and_empties_the_export() {
    let redis = RedisServer::start();
    let a = ProcessNode::start("a", &redis.url(), &[]).await;
    let b = ProcessNode::start("b", &redis.url(), &[]).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let mut alice_a = a.connect(&alice).await;
    let mut alice_b = b.connect(&alice).await;
    let mut bob_b = b.connect(&bob).await;

    for body in ["one", "two", "three"] {
        a.send_to(&[&alice], body).await;
    }
    for tab in [&mut alice_a, &mut alice_b] {
        for body in ["one", "two", "three"] {
            assert_eq!(tab.message().await.body, body);
        }
    }
    let reply = bob_b.send_private("1", &alice, "hi alice").await;
    assert!(reply.ok, "{reply:?}");
    for tab in [&mut alice_a, &mut alice_b] {
        assert_eq!(tab.message().await.body, "hi alice");
    }
    let reply = alice_a.send_private("2", &bob, "hi bob").await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(bob_b.message().await.body, "hi bob");
    let (status, _) = call(
        &a,
        reqwest::Method::PUT,
        &format!("/v1/users/{alice}/topics/article:7"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &a,
        reqwest::Method::PUT,
        &format!("/v1/users/{alice}/blocks/{}", user("mallory")),
    )
    .await;
    assert_eq!(status, 200);

    let (status, doc) = call(
        &b,
        reqwest::Method::GET,
        &format!("/v1/users/{alice}/export"),
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    let bodies: Vec<&str> = doc["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["one", "two", "three", "hi alice"]);
    assert_eq!(doc["topics"], json!(["article:7"]));
    assert_eq!(doc["conversations"][0]["peer"], bob.as_str());
    let presence = a.get(&format!("/v1/users/{alice}/presence")).await;
    assert_eq!(presence["connections"].as_array().unwrap().len(), 2);
    let online_before = a.get("/v1/presence").await["online_users"]
        .as_u64()
        .unwrap();

    let (status, erased) = call(&a, reqwest::Method::DELETE, &format!("/v1/users/{alice}")).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["user_id"], alice.as_str());
    let mut by_kind = erased["erased"].clone();
    // The test's clients acknowledge nothing; no cursor to count.
    by_kind.as_object_mut().unwrap().remove("cursors");
    assert_eq!(
        by_kind,
        json!({"messages": 4, "conversations": 1, "topics": 1, "blocked": 1,
               "preferences": 0, "scheduled": 0, "webhooks": 0, "connections": 2})
    );
    // Both of her connections, on both nodes, are closed with 4003.
    for tab in [&mut alice_a, &mut alice_b] {
        assert_eq!(tab.closed().await.map(u16::from), Some(4003));
    }
    // Presence and counts no longer list her, at once.
    let presence = b.get(&format!("/v1/users/{alice}/presence")).await;
    assert_eq!(presence["online"], false, "{presence}");
    assert_eq!(
        b.get("/v1/presence").await["online_users"]
            .as_u64()
            .unwrap(),
        online_before - 1
    );
    let counts = b.get(&format!("/v1/users/{alice}/counts")).await;
    assert_eq!(counts["unread_total"], 0, "{counts}");
    let (_, doc) = call(
        &b,
        reqwest::Method::GET,
        &format!("/v1/users/{alice}/export"),
    )
    .await;
    for empty in [
        "messages",
        "topics",
        "blocked",
        "conversations",
        "scheduled",
        "webhooks",
    ] {
        assert_eq!(doc[empty], json!([]), "{empty}: {doc}");
    }
    // Bob keeps his side of the conversation — what alice sent him, in
    // his inbox — and his connection. What he sent her was her copy, in
    // her inbox, and went with it.
    let bobs = b.get(&format!("/v1/users/{bob}/conversations")).await;
    assert_eq!(bobs["conversations"][0]["peer"], alice.as_str(), "{bobs}");
    let page = b
        .get(&format!("/v1/users/{bob}/conversations/{alice}"))
        .await;
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["hi bob"], "{page}");
    a.send_to(&[&bob], "still here").await;
    loop {
        match bob_b.next_any().await {
            ServerFrame::Message(m) if m.body == "still here" => break,
            _ => continue,
        }
    }

    // Idempotent: again, nothing is erased.
    let (status, again) = call(&b, reqwest::Method::DELETE, &format!("/v1/users/{alice}")).await;
    assert_eq!(status, 200);
    assert!(
        again["erased"]
            .as_object()
            .unwrap()
            .values()
            .all(|n| n == 0),
        "{again}"
    );
    // She may come back (her credentials are the application's to
    // revoke): her seqs go on where they were, nothing of before is there.
    let mut back = a.connect(&alice).await;
    a.send_to(&[&alice], "after").await;
    let m = back.message().await;
    assert_eq!((m.body.as_str(), m.seq), ("after", 5));
    eventually("bad ids refused", || async {
        call(&a, reqwest::Method::DELETE, "/v1/users/a%20b").await.0 == 400
    })
    .await;
}

/// 10,000 messages: the export is streamed (no `Content-Length`, chunked)
/// and holds every one, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_inbox_is_exported_as_a_stream() {
    let node = TestNode::start().await;
    let alice = user("alice");
    for batch in 0..10 {
        let messages: Vec<Value> = (0..1_000)
            .map(|i| {
                json!({"to": {"users": [alice]}, "category": "remind",
                       "body": format!("m{}", batch * 1_000 + i)})
            })
            .collect();
        let (status, body) = node
            .post_to("/v1/messages/batch", json!({ "messages": messages }))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let resp = reqwest::Client::new()
        .get(node.http(&format!("/v1/users/{alice}/export")))
        .bearer_auth(API_KEY)
        .timeout(WAIT * 3)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("content-length").is_none(),
        "streamed, not buffered: {:?}",
        resp.headers()
    );
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.unwrap();
    let messages = doc["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 10_000);
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m["seq"], i as u64 + 1);
        assert_eq!(m["body"], format!("m{i}"));
        assert_eq!(m["state"], "unseen");
    }
}
