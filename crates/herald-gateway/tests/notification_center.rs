//! The notification center across two real `herald` processes on one real
//! Redis, over the WebSocket and the server API: marks, live counts on every
//! tab, history, announcements, idempotent sends, one validator.

mod common;

use common::process::ProcessNode;
use common::{Api, TestNode};
use herald_protocol::{ClientFrame, MarkSelector, MarkState, ServerFrame, UpTo};
use herald_testing::RedisServer;

async fn two_nodes() -> (RedisServer, ProcessNode, ProcessNode) {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    (redis, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_on_one_node_pushes_counts_to_a_tab_on_the_other() {
    let (_redis, a, b) = two_nodes().await;
    let mut tab_a = a.connect("dana").await;
    let mut tab_b = b.connect("dana").await;
    for tab in [&mut tab_a, &mut tab_b] {
        tab.counts_until(|c| c.unread_total == 0).await;
    }
    a.send_to(&["dana"], "one").await;
    a.send_to(&["dana"], "two").await;
    for tab in [&mut tab_a, &mut tab_b] {
        let c = tab.counts_until(|c| c.unread_total == 2).await;
        assert_eq!((c.unread["remind"], c.unseen_total), (2, 2));
    }
    // Tab A marks the first one read over the WebSocket.
    tab_a
        .send(ClientFrame::Mark {
            rid: 1.into(),
            state: MarkState::Read,
            selector: MarkSelector {
                up_to: Some(UpTo {
                    stream: herald_protocol::Stream::Inbox,
                    seq: 1,
                }),
                ..Default::default()
            },
            until: None,
            tags: None,
            severity: None,
        })
        .await;
    let reply = loop {
        if let ServerFrame::Reply(r) = tab_a.next_any().await {
            break r;
        }
    };
    assert_eq!((reply.ok, reply.changed), (true, Some(1)), "{reply:?}");
    let c = tab_b.counts_until(|c| c.unread_total == 1).await;
    assert_eq!(c.unseen_total, 1);
    // The server API marks the rest, through the other node.
    let (status, body) = b
        .post_to(
            "/v1/users/dana/mark",
            serde_json::json!({"state": "read", "all": true}),
        )
        .await;
    assert_eq!((status, body["changed"].as_u64()), (200, Some(1)), "{body}");
    for tab in [&mut tab_a, &mut tab_b] {
        tab.counts_until(|c| c.unread_total == 0).await;
    }
    let counts = a.get("/v1/users/dana/counts").await;
    assert_eq!(counts["unread_total"], 0, "{counts}");
    let history = a.get("/v1/users/dana/messages?limit=10").await;
    let states: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["read", "read"], "{history}");
    assert!(history["next"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_on_another_node_stores_nothing_again() {
    let (_redis, a, b) = two_nodes().await;
    let body = serde_json::json!({"to": {"users": ["erik"]}, "category": "system",
        "body": "once", "idempotency_key": "order-42"});
    let (status, first) = a.post(body.clone()).await;
    assert_eq!(status, 202, "{first}");
    let (status, retry) = b.post(body).await;
    assert_eq!(status, 202, "{retry}");
    assert_eq!(first, retry, "the retry gets the first outcome");
    let inbox = a.get("/v1/users/erik/inbox").await;
    assert_eq!(inbox["messages"].as_array().unwrap().len(), 1, "{inbox}");
    // The same key with another body is a conflict.
    let other = serde_json::json!({"to": {"users": ["erik"]}, "category": "system",
        "body": "different", "idempotency_key": "order-42"});
    let (status, err) = b.post(other).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{err}"
    );
    // Over the WebSocket, a retried `send` with its key gets the same reply.
    let mut fay = a.connect("fay").await;
    let send = |rid: i64| ClientFrame::Send {
        rid: rid.into(),
        to: "erik".into(),
        body: "hi".into(),
        title: None,
        data: None,
        key: Some("k1".into()),
        expires_at: None,
        group_key: None,
        tags: None,
        severity: None,
    };
    fay.send(send(1)).await;
    let first = fay.reply().await;
    let mut fay_b = b.connect("fay").await;
    fay_b.send(send(2)).await;
    let retry = fay_b.reply().await;
    assert!(first.ok && retry.ok, "{first:?} {retry:?}");
    assert_eq!((first.id, first.seq), (retry.id, retry.seq));
    let inbox = a.get("/v1/users/erik/inbox").await;
    assert_eq!(inbox["messages"].as_array().unwrap().len(), 2, "{inbox}");
}

/// The API and the WebSocket refuse the same bad message with the same words.
#[tokio::test]
async fn validation_is_identical_over_api_and_websocket() {
    let node = TestNode::start().await;
    let mut ws = node.connect("gus").await;
    let cases = [
        (
            serde_json::json!({"data": [1]}),
            "data: must be a JSON object",
        ),
        (
            serde_json::json!({"title": "t".repeat(1025)}),
            "title: longer than 1024 bytes",
        ),
        (
            serde_json::json!({"data": {"x": "y".repeat(17 * 1024)}}),
            "data: longer than 16384 bytes",
        ),
    ];
    for (i, (extra, expected)) in cases.into_iter().enumerate() {
        let mut api =
            serde_json::json!({"to": {"users": ["hal"]}, "category": "mailbox", "body": "b"});
        let mut frame = serde_json::json!({"type": "send", "rid": i, "to": "hal", "body": "b"});
        for (k, v) in extra.as_object().unwrap() {
            api[k] = v.clone();
            frame[k] = v.clone();
        }
        let (status, body) = node.post(api).await;
        assert_eq!(status, 400);
        let api_message = body["error"]["message"].as_str().unwrap().to_owned();
        ws.send_raw(serde_json::to_vec(&frame).unwrap()).await;
        let reply = ws.reply().await;
        let ws_error = reply.error.expect("an error reply");
        assert_eq!(api_message, ws_error.message);
        assert_eq!(api_message, expected);
        assert_eq!(body["error"]["code"], "invalid_field");
        assert_eq!(ws_error.code, herald_protocol::ErrorCode::InvalidField);
    }
}

/// A device connecting for the first time gets the user's unread
/// announcements only; expired ones are neither pushed, listed nor counted.
#[tokio::test]
async fn a_new_device_gets_only_unread_unexpired_announcements() {
    let node = TestNode::start().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, body) = node
            .post(
                serde_json::json!({"to": {"all": true}, "category": "announcement",
                "body": format!("a{i}")}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let soon = time::OffsetDateTime::now_utc() + std::time::Duration::from_millis(300);
    let (status, body) = node
        .post(serde_json::json!({"to": {"all": true}, "category": "announcement",
            "body": "flash", "expires_at": soon.format(&time::format_description::well_known::Rfc3339).unwrap()}))
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = node
        .post_to(
            "/v1/users/ivy/mark",
            serde_json::json!({"state": "read", "ids": [ids[1]]}),
        )
        .await;
    assert_eq!((status, body["changed"].as_u64()), (200, Some(1)), "{body}");
    common::eventually("the flash announcement expires", || async {
        node.get("/v1/users/ivy/counts").await["unread"]["announcement"] == 2
    })
    .await;
    let mut phone = node.connect("ivy").await;
    let bodies = [phone.message().await.body, phone.message().await.body];
    assert_eq!(bodies, ["a0", "a2"]);
    let counts = phone.counts_until(|_| true).await;
    assert_eq!((counts.unread["announcement"], counts.unread_total), (2, 2));
    phone.quiet(std::time::Duration::from_millis(200)).await;
    let history = node.get("/v1/users/ivy/messages").await;
    assert_eq!(
        history["messages"].as_array().unwrap().len(),
        3,
        "{history}"
    );
}

/// Operators add categories; an unknown one is refused with the list; only
/// announcements go to everyone.
#[tokio::test]
async fn configured_categories_and_the_announcement_rule() {
    let mut settings = common::settings();
    settings.categories.insert(
        "promo".into(),
        herald_gateway::settings::CategorySettings {
            badge: false,
            ..Default::default()
        },
    );
    let node = TestNode::with(settings).await;
    let (status, body) = node
        .post(serde_json::json!({"to": {"users": ["jo"]}, "category": "promo", "body": "sale"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let counts = node.get("/v1/users/jo/counts").await;
    assert_eq!(
        (
            counts["unread"]["promo"].as_u64(),
            counts["unread_total"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let (status, body) = node
        .post(serde_json::json!({"to": {"users": ["jo"]}, "category": "nope", "body": "x"}))
        .await;
    assert_eq!(status, 400);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unknown category \"nope\"") && message.contains("promo"),
        "{message}"
    );
    let (status, body) = node
        .post(serde_json::json!({"to": {"all": true}, "category": "system", "body": "x"}))
        .await;
    assert_eq!(status, 400, "{body}");
    // A retry on the same node with the same key: the first outcome.
    let keyed = serde_json::json!({"to": {"users": ["jo"]}, "category": "remind",
        "body": "once", "idempotency_key": "same-node"});
    let (_, first) = node.post(keyed.clone()).await;
    let (status, again) = node.post(keyed).await;
    assert_eq!((status, &first), (202, &again));
}

/// History and marks over the WebSocket, with the counts they change.
#[tokio::test]
async fn history_and_marks_over_the_websocket() {
    let node = TestNode::start().await;
    for i in 0..5 {
        node.send_to(&["kim"], &format!("m{i}")).await;
    }
    let mut tab = node.connect("kim").await;
    tab.counts_until(|c| c.unread_total == 5).await;
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        tab.send(ClientFrame::History {
            rid: 1.into(),
            category: Some("remind".into()),
            state: Some(herald_protocol::StateFilter::Unread),
            before: before.clone(),
            limit: Some(2),
            snoozed: None,
            tags: None,
            severity: None,
        })
        .await;
        let reply = tab.reply().await;
        assert!(reply.ok, "{reply:?}");
        for entry in reply.messages.unwrap() {
            assert_eq!(entry.state, herald_protocol::MessageState::Unseen);
            seen.push(entry.message.body);
        }
        match reply.next.unwrap() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["m4", "m3", "m2", "m1", "m0"]);
    tab.send(ClientFrame::Mark {
        rid: 2.into(),
        state: MarkState::Archived,
        selector: MarkSelector {
            category: Some("remind".into()),
            ..Default::default()
        },
        until: None,
        tags: None,
        severity: None,
    })
    .await;
    let reply = tab.reply().await;
    assert_eq!(reply.changed, Some(5), "{reply:?}");
    tab.counts_until(|c| c.unread_total == 0).await;
    // A bad selector is a clear error, and the connection stays.
    tab.send(ClientFrame::Mark {
        rid: 3.into(),
        state: MarkState::Read,
        selector: MarkSelector::default(),
        until: None,
        tags: None,
        severity: None,
    })
    .await;
    let reply = tab.reply().await;
    let error = reply.error.expect("an error");
    assert_eq!(error.code, herald_protocol::ErrorCode::InvalidField);
    assert!(error.message.contains("exactly one"), "{}", error.message);
    assert!(tab.send_private("4", "lee", "still here").await.ok);
}

/// A tab's counts drop a message when it expires, with no other event:
/// one counted at connect, and one delivered live.
#[tokio::test]
async fn an_open_tab_counts_drop_expiring_messages_on_time() {
    let node = TestNode::start().await; // heartbeat 25 s: far later than the expiries
    let rfc3339 = |ms: u64| {
        (time::OffsetDateTime::now_utc() + std::time::Duration::from_millis(ms))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (status, body) = node
        .post(
            serde_json::json!({"to": {"users": ["oli"]}, "category": "remind",
            "body": "soon gone", "expires_at": rfc3339(1_500)}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let mut tab = node.connect("oli").await;
    tab.counts_until(|c| c.unread_total == 1).await;
    let (status, body) = node
        .post(
            serde_json::json!({"to": {"all": true}, "category": "announcement",
            "body": "flash", "expires_at": rfc3339(2_500)}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    tab.counts_until(|c| c.unread_total == 2).await;
    let started = std::time::Instant::now();
    tab.counts_until(|c| c.unread_total == 1).await;
    tab.counts_until(|c| c.unread_total == 0).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Topic subscriptions over the WebSocket and the server API, on two nodes
/// sharing Redis; subscribers paged for backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_subscriptions_over_websocket_and_api_across_nodes() {
    let (_redis, a, b) = two_nodes().await;
    let mut tab = a.connect("pia").await;
    for (rid, topic) in [(1, "article:42"), (2, "user:bob")] {
        tab.send(ClientFrame::Subscribe {
            rid: rid.into(),
            topic: topic.into(),
        })
        .await;
        assert!(tab.reply().await.ok);
    }
    let client = reqwest::Client::new();
    for user in ["quin", "rae"] {
        let resp = client
            .put(b.http(&format!("/v1/users/{user}/topics/article:42")))
            .bearer_auth(common::API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["changed"], true, "{body}");
    }
    tab.send(ClientFrame::Topics { rid: 3.into() }).await;
    let reply = tab.reply().await;
    assert_eq!(
        reply.topics,
        Some(vec!["article:42".to_owned(), "user:bob".to_owned()])
    );
    let page = b.get("/v1/topics/article:42/subscribers?limit=2").await;
    assert_eq!(
        page["subscribers"],
        serde_json::json!(["pia", "quin"]),
        "{page}"
    );
    assert_eq!(page["total"], 3);
    let next = page["next"].as_str().unwrap();
    let page = b
        .get(&format!(
            "/v1/topics/article:42/subscribers?limit=2&after={next}"
        ))
        .await;
    assert_eq!(page["subscribers"], serde_json::json!(["rae"]), "{page}");
    assert!(page["next"].is_null());
    tab.send(ClientFrame::Unsubscribe {
        rid: 4.into(),
        topic: "article:42".into(),
    })
    .await;
    assert!(tab.reply().await.ok);
    assert_eq!(
        a.get("/v1/users/pia/topics").await["topics"],
        serde_json::json!(["user:bob"])
    );
    // A bad topic is a clear error, over both.
    tab.send(ClientFrame::Subscribe {
        rid: 5.into(),
        topic: "no spaces".into(),
    })
    .await;
    let reply = tab.reply().await;
    assert_eq!(
        reply.error.map(|e| e.code),
        Some(herald_protocol::ErrorCode::InvalidField)
    );
    let resp = client
        .put(a.http("/v1/users/pia/topics/%7Bbad%7D"))
        .bearer_auth(common::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// Blocking: over the WebSocket, a blocked user's `send` is refused with
/// `blocked` on any node, and the API refuses a private message with 403;
/// after unblocking, messages go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_sender_is_refused_on_every_node() {
    let (_redis, a, b) = two_nodes().await;
    let mut sue = a.connect("sue").await;
    sue.send(ClientFrame::Block {
        rid: 1.into(),
        user: "max".into(),
    })
    .await;
    assert!(sue.reply().await.ok);
    let mut max = b.connect("max").await;
    let reply = max.send_private("2", "sue", "hi?").await;
    assert_eq!(
        reply.error.map(|e| e.code),
        Some(herald_protocol::ErrorCode::Blocked)
    );
    let (status, body) = a
        .post(
            serde_json::json!({"to": {"users": ["sue"]}, "category": "mailbox",
            "from": "max", "body": "via the API"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("blocked")),
        "{body}"
    );
    // A system message from no one is not a private message: it goes through.
    b.send_to(&["sue"], "system notice").await;
    assert_eq!(sue.message().await.body, "system notice");
    assert_eq!(
        b.get("/v1/users/sue/blocks").await["blocked"],
        serde_json::json!(["max"])
    );
    let resp = reqwest::Client::new()
        .delete(b.http("/v1/users/sue/blocks/max"))
        .bearer_auth(common::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(max.send_private("3", "sue", "friends again").await.ok);
    assert_eq!(sue.message().await.body, "friends again");
}

/// Pipelined `send`s that each check a block list and claim an idempotency
/// key (round trips that finish in any order) still take seqs in request
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_keyed_sends_keep_their_order() {
    let (_redis, a, b) = two_nodes().await;
    let mut tess = a.connect("tess").await;
    let mut uma = b.connect("uma").await;
    const N: usize = 200;
    for i in 0..N {
        tess.send(ClientFrame::Send {
            rid: (i as i64).into(),
            to: "uma".into(),
            body: format!("b{i}"),
            title: None,
            data: None,
            key: Some(format!("key-{i}")),
            expires_at: None,
            group_key: None,
            tags: None,
            severity: None,
        })
        .await;
    }
    for i in 0..N {
        let reply = tess.reply().await;
        assert_eq!(reply.seq, Some(i as u64 + 1), "{reply:?}");
    }
    for i in 0..N {
        let m = uma.message().await;
        assert_eq!((m.seq, m.body), (i as u64 + 1, format!("b{i}")));
    }
}
