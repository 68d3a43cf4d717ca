//! Snooze across real `herald` processes on a real Redis: a snooze on one
//! node leaves the counts of a tab on the other at once and comes back at
//! its time with a `changed` frame; the API's `snoozed` history filter;
//! and a node killed with SIGKILL while it holds due wake-ups.

mod common;

use std::time::Duration;

use common::now_ms;
use common::process::{holder_and_edge, ProcessNode, SHORT_LEASE};
use common::{Api, WAIT};
use futures_util::future::join_all;
use herald_protocol::{ChangedState, ServerFrame};
use herald_testing::RedisServer;
use serde_json::json;

/// The next `changed` frame of `tab` (others skipped).
async fn changed(tab: &mut common::Client) -> herald_protocol::Changed {
    loop {
        if let ServerFrame::Changed(c) = tab.next().await {
            return c;
        }
    }
}

/// Snoozed through the API on node A: alice's tab on node B sees her
/// counts drop at once; history leaves the messages out unless
/// `?snoozed=true`; at `until` (±1 s) the tab gets `changed` with their
/// ids, state `unsnoozed`, and counts back up; bad `until`s are 400s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snooze_on_one_node_comes_back_on_a_tab_on_the_other() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    let first = a.send_to(&["snoozer"], "one").await;
    let second = a.send_to(&["snoozer"], "two").await;
    a.send_to(&["snoozer"], "three").await;
    let mut tab = b.connect("snoozer").await;
    tab.counts_until(|c| c.unread_total == 3).await;
    let ids = [first["id"].clone(), second["id"].clone()];
    // Far enough ahead for the checks before it on a loaded machine.
    let until = now_ms() + 3_000;
    let (status, reply) = a
        .post_to(
            "/v1/users/snoozer/mark",
            json!({"state": "snoozed", "ids": ids, "until": until}),
        )
        .await;
    assert_eq!((status, &reply), (200, &json!({"changed": 2})));
    let counts = tab.counts_until(|c| c.unread_total == 1).await;
    assert_eq!(counts.unseen_total, 1);
    let page = b.get("/v1/users/snoozer/messages").await;
    let bodies: Vec<_> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["three"], "{page}");
    let page = b.get("/v1/users/snoozer/messages?snoozed=true").await;
    let snoozed = page["messages"].as_array().unwrap();
    assert_eq!(snoozed.len(), 2, "{page}");
    assert!(
        snoozed
            .iter()
            .all(|m| m["state"] == "snoozed" && m["until"] == until),
        "{page}"
    );

    let frame = changed(&mut tab).await;
    let at = now_ms();
    assert!(at >= until - 50, "early: {at} < {until}");
    assert!(at <= until + 1_000, "late: {} ms", at - until);
    assert_eq!(frame.state, ChangedState::Unsnoozed);
    let mut got: Vec<String> = frame.ids.iter().map(|id| id.to_string()).collect();
    got.sort();
    let mut want: Vec<String> = ids.iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    want.sort();
    assert_eq!(got, want);
    let counts = tab.counts_until(|c| c.unread_total == 3).await;
    assert_eq!(counts.unseen_total, 3);
    tab.quiet(Duration::from_millis(700)).await;
    let page = a.get("/v1/users/snoozer/messages?snoozed=true").await;
    assert_eq!(page["messages"], json!([]), "{page}");

    for (body, field) in [
        (
            json!({"state": "snoozed", "all": true, "until": now_ms() - 1}),
            "until",
        ),
        (json!({"state": "snoozed", "all": true}), "until"),
        (
            json!({"state": "read", "all": true, "until": now_ms() + 60_000}),
            "until",
        ),
        (
            json!({"state": "snoozed", "all": true, "until": now_ms() + 367 * 86_400_000_i64}),
            "until",
        ),
    ] {
        let (status, reply) = a.post_to("/v1/users/snoozer/mark", body.clone()).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{reply}"
        );
    }
}

/// 1,500 users each snooze a message due at the same moment; the node
/// holding the wake-ups is killed with SIGKILL once the first comes back.
/// A node started afterwards wakes the rest once the lease ends: every
/// user's counts are back to 1 unread, and watchers on a third node get
/// one `changed` each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_held_by_a_killed_node_come_back_once_from_another() {
    const USERS: usize = 1_500;
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let (mut holder, edge) = holder_and_edge(&redis.url()).await;
    let users: Vec<String> = (0..USERS).map(|i| format!("nap-{i:04}")).collect();
    for chunk in users.chunks(1_000) {
        let messages: Vec<_> = chunk
            .iter()
            .map(|u| json!({"to": {"users": [u]}, "category": "remind", "body": "nap"}))
            .collect();
        let (status, reply) = edge
            .post_to("/v1/messages/batch", json!({ "messages": messages }))
            .await;
        assert_eq!(status, 202, "{reply}");
    }
    let until = now_ms() + 6_000;
    let client = reqwest::Client::new();
    for chunk in users.chunks(100) {
        let marks = chunk.iter().map(|u| {
            client
                .post(edge.http(&format!("/v1/users/{u}/mark")))
                .bearer_auth(common::API_KEY)
                .timeout(WAIT)
                .json(&json!({"state": "snoozed", "all": true, "until": until}))
                .send()
        });
        for resp in join_all(marks).await {
            assert_eq!(resp.unwrap().status(), 200);
        }
    }
    assert!(now_ms() < until, "snoozing took too long to test the kill");
    let mut first = edge.connect(&users[0]).await;
    let mut last = edge.connect(&users[USERS - 1]).await;
    let first_came = tokio::select! {
        _ = changed(&mut first) => true,
        _ = changed(&mut last) => false,
    };
    holder.kill9();
    // Read without waking anyone (a counts read would end a due snooze
    // itself): the snoozed history.
    let snoozed = |u: String| {
        let edge = &edge;
        async move {
            let page = edge
                .get(&format!("/v1/users/{u}/messages?snoozed=true"))
                .await;
            !page["messages"].as_array().unwrap().is_empty()
        }
    };
    let at_kill: Vec<bool> = join_all(users.iter().cloned().map(snoozed)).await;
    assert!(
        at_kill.iter().any(|s| *s),
        "the holder woke everyone before the kill"
    );
    let _taker = ProcessNode::start("taker", &redis.url(), &SHORT_LEASE).await;
    common::eventually("every snooze ended", || async {
        !join_all(users.iter().cloned().map(snoozed))
            .await
            .iter()
            .any(|s| *s)
    })
    .await;
    for u in &users {
        let counts = edge.get(&format!("/v1/users/{u}/counts")).await;
        assert_eq!(counts["unread_total"], 1, "{u}: {counts}");
    }
    let other = if first_came { &mut last } else { &mut first };
    assert_eq!(changed(other).await.state, ChangedState::Unsnoozed);
    for tab in [&mut first, &mut last] {
        tab.quiet(common::process::SHORT).await;
    }
}
