//! Users' preferences over the server API and the WebSocket: who may read
//! and change them, hostile bodies, the push to every tab, and two real
//! `herald` processes on one Redis (a change on one node reaches a tab on
//! the other).

mod common;

use common::process::ProcessNode;
use common::{Api, TestNode, API_KEY, WAIT};
use herald_gateway::api_keys::Scope;
use herald_gateway::settings::ApiKeySettings;
use herald_protocol::{ClientFrame, ServerFrame};
use serde_json::{json, Value};

const SEND_KEY: &str = "send-only-key-0123456789";

/// `method` on `/v1/users/{user}/preferences` with `bearer`; status and body.
async fn call(
    addr: std::net::SocketAddr,
    method: reqwest::Method,
    user: &str,
    bearer: &str,
    body: Option<String>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("http://{addr}/v1/users/{user}/preferences"))
        .bearer_auth(bearer)
        .timeout(WAIT);
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn patch(node: &TestNode, user: &str, bearer: &str, body: Value) -> (u16, Value) {
    call(
        node.addr,
        reqwest::Method::PATCH,
        user,
        bearer,
        Some(body.to_string()),
    )
    .await
}

/// The next reply, past the `preferences` pushes a change sends this tab
/// too (they may come before or after it).
async fn reply_of(tab: &mut common::Client) -> herald_protocol::Reply {
    loop {
        match tab.next_any().await {
            ServerFrame::Reply(r) => return r,
            ServerFrame::Preferences { .. } | ServerFrame::Counts(_) => {}
            other => panic!("expected a reply, got {other:?}"),
        }
    }
}

async fn next_message(tab: &mut common::Client) -> herald_protocol::Message {
    loop {
        if let ServerFrame::Message(m) = tab.next_any().await {
            return m;
        }
    }
}

async fn next_preferences(tab: &mut common::Client) -> herald_protocol::Preferences {
    loop {
        if let ServerFrame::Preferences { preferences } = tab.next_any().await {
            return preferences;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_over_the_api_and_the_websocket() {
    let mut settings = common::settings();
    settings.categories.insert(
        "promo".into(),
        herald_gateway::settings::CategorySettings {
            in_app: false,
            ..Default::default()
        },
    );
    let node = TestNode::with(settings).await;
    let (status, body) = call(node.addr, reqwest::Method::GET, "ada", API_KEY, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["categories"]["remind"],
        json!({"in_app": true, "fallback": true})
    );
    assert_eq!(
        body["categories"]["promo"],
        json!({"in_app": false, "fallback": true})
    );
    assert_eq!(
        (&body["topics"], &body["quiet_hours"]),
        (&json!({}), &Value::Null)
    );

    let mut tab = node.connect("ada").await;
    let mut other_tab = node.connect("ada").await;
    // The user's own token may change them; both tabs hear of it.
    let (status, body) = patch(
        &node,
        "ada",
        &node.token("ada"),
        json!({"categories": {"remind": {"in_app": false}}, "topics": {"article:1": {"fallback": false}},
               "quiet_hours": {"tz": "Asia/Tokyo", "start": "23:00", "end": "06:30"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["categories"]["remind"],
        json!({"in_app": false, "fallback": true})
    );
    assert_eq!(
        body["topics"]["article:1"],
        json!({"in_app": true, "fallback": false})
    );
    assert_eq!(body["quiet_hours"]["tz"], "Asia/Tokyo");
    for t in [&mut tab, &mut other_tab] {
        let pushed = next_preferences(t).await;
        assert!(!pushed.categories["remind"].in_app);
    }
    // Over the WebSocket: read, then change; the other tab is told.
    tab.send(ClientFrame::Preferences { rid: 1.into() }).await;
    let reply = reply_of(&mut tab).await;
    assert_eq!(reply.preferences.unwrap().topics.len(), 1);
    tab.send_raw(
        br#"{"type":"set_preferences","rid":2,"preferences":{"topics":{"article:1":null},"quiet_hours":null}}"#
            .to_vec(),
    )
    .await;
    let reply = reply_of(&mut tab).await;
    let all = reply.preferences.expect("all of them in the reply");
    assert!(all.topics.is_empty() && all.quiet_hours.is_none());
    assert!(!all.categories["remind"].in_app, "kept");
    assert_eq!(next_preferences(&mut other_tab).await, all);
    tab.send_raw(br#"{"type":"set_preferences","rid":3,"preferences":{"categories":{"nope":{"in_app":false}}}}"#.to_vec())
        .await;
    let reply = reply_of(&mut tab).await;
    let error = reply.error.expect("refused");
    assert!(
        error.message.contains("categories.nope"),
        "{}",
        error.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_preference_requests_are_refused() {
    let mut settings = common::settings();
    settings.api.keys = vec![ApiKeySettings {
        name: "sender".into(),
        key: SEND_KEY.into(),
        scopes: vec![Scope::Send],
    }];
    let node = TestNode::with(settings).await;
    let get = reqwest::Method::GET;
    // Another user's token, a key without the `users` scope, nothing.
    let eve = node.token("eve");
    assert_eq!(call(node.addr, get.clone(), "bob", &eve, None).await.0, 403);
    let (status, _) = patch(
        &node,
        "bob",
        &eve,
        json!({"categories": {"remind": {"in_app": false}}}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        call(node.addr, get.clone(), "bob", SEND_KEY, None).await.0,
        403
    );
    assert_eq!(
        call(node.addr, get.clone(), "bob", "not-a-key", None)
            .await
            .0,
        401
    );
    // Bodies: too big, unknown fields, bad names, zones, times, topics.
    let big = json!({"topics": {"x": {"in_app": false}}, "pad": "y".repeat(100_000)});
    let (status, body) = patch(&node, "bob", API_KEY, big).await;
    assert_eq!(status, 413, "{body}");
    let many: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| (format!("t:{i}"), json!({"in_app": false})))
        .collect();
    let cases = [
        (json!({"colour": "blue"}), "colour"),
        (json!({"categories": {"remind": {"sms": true}}}), "sms"),
        (
            json!({"categories": {"gossip": {"in_app": false}}}),
            "categories.gossip",
        ),
        (
            json!({"quiet_hours": {"tz": "Moon/Base", "start": "22:00", "end": "07:00"}}),
            "quiet_hours.tz",
        ),
        (
            json!({"quiet_hours": {"tz": "UTC", "start": "22:00", "end": "7"}}),
            "quiet_hours.end",
        ),
        (json!({"topics": {"a b": {"in_app": false}}}), "topics.a b"),
    ];
    for (body, named) in cases {
        let (status, json) = patch(&node, "bob", API_KEY, body.clone()).await;
        assert_eq!(status, 400, "{body}: {json}");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{body}: {message}");
    }
    // 10,000 topics: over 64 KiB already (413); under it, past the limit (400).
    let (status, _) = patch(&node, "bob", API_KEY, json!({"topics": many})).await;
    assert_eq!(status, 413);
    let over: serde_json::Map<String, Value> = (0..=herald_core::MAX_TOPIC_PREFERENCES)
        .map(|i| (format!("{i}"), json!({})))
        .collect();
    let (status, json) = patch(&node, "bob", API_KEY, json!({"topics": over})).await;
    assert_eq!(status, 400, "{json}");
    // Nothing of it was written.
    let (_, now) = call(node.addr, get, "bob", API_KEY, None).await;
    assert_eq!(now["topics"], json!({}));
    assert_eq!(now["categories"]["remind"]["in_app"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_reaches_a_tab_on_the_other() {
    let redis = tokio::task::spawn_blocking(herald_testing::RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    let mut tab = b.connect("kai").await;
    tab.counts_until(|c| c.unread_total == 0).await;
    let resp = reqwest::Client::new()
        .patch(a.http("/v1/users/kai/preferences"))
        .bearer_auth(API_KEY)
        .json(&json!({"categories": {"system": {"fallback": false}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let pushed = next_preferences(&mut tab).await;
    assert!(!pushed.categories["system"].fallback);
    assert!(pushed.categories["system"].in_app);
    let on_b = b.get("/v1/users/kai/preferences").await;
    assert_eq!(on_b["categories"]["system"]["fallback"], false);
    // Muted on Redis: the append script keeps it out, on either node.
    b.send_to(&["kai"], "before").await;
    let resp = reqwest::Client::new()
        .patch(a.http("/v1/users/kai/preferences"))
        .bearer_auth(API_KEY)
        .json(&json!({"categories": {"remind": {"in_app": false}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let sent = b.send_to(&["kai", "lea"], "muted").await;
    assert_eq!(sent["skipped"], json!(["kai"]), "{sent}");
    assert_eq!(a.get("/v1/users/kai/inbox").await["last_seq"], 1);
    let counts = a.get("/v1/users/kai/counts").await;
    assert_eq!(counts["unread"]["remind"], 1, "{counts}");
}

/// `in_app: false` keeps a send out of that receiver's inbox: the 202 says
/// `skipped`, a private send's reply `skipped: true`; a critical send is
/// stored all the same and carries `critical`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muted_messages_are_skipped_and_critical_ones_kept() {
    let node = TestNode::start().await;
    let (status, _) = patch(
        &node,
        "ada",
        API_KEY,
        json!({"categories": {"remind": {"in_app": false}, "mailbox": {"in_app": false}}}),
    )
    .await;
    assert_eq!(status, 200);
    let send = json!({"to": {"users": ["ada", "bob"]}, "category": "remind", "body": "x"});
    let (status, body) = node.post(send.clone()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["skipped"], json!(["ada"]));
    assert_eq!(body["stored"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = node
        .post(json!({"to": {"users": ["bob"]}, "category": "remind", "body": "y"}))
        .await;
    assert_eq!(body["skipped"], json!([]), "always there");
    let mut urgent = send;
    urgent["critical"] = json!(true);
    let (status, body) = node.post(urgent).await;
    assert_eq!((status, &body["skipped"]), (202, &json!([])), "{body}");
    let inbox = node.get("/v1/users/ada/inbox").await;
    assert_eq!(inbox["last_seq"], 1, "{inbox}");
    assert_eq!(inbox["messages"][0]["critical"], true);
    // A private message to someone who muted `mailbox`.
    let mut cyd = node.connect("cyd").await;
    let reply = cyd.send_private("p1", "ada", "hello").await;
    assert_eq!(
        (reply.ok, reply.skipped, reply.seq),
        (true, Some(true), None),
        "{reply:?}"
    );
    assert_eq!(node.get("/v1/users/ada/inbox").await["last_seq"], 1);
    // `critical` is the operator's: a client's send may not carry it.
    cyd.send_raw(br#"{"type":"send","rid":"p2","to":"ada","body":"x","critical":true}"#.to_vec())
        .await;
    assert!(cyd
        .reply()
        .await
        .error
        .is_some_and(|e| e.message.contains("critical")));
}

/// Inside the user's quiet hours a live message carries `silent: true`
/// (stored and counted as usual); a critical one never does, nor does a
/// backlog; without quiet hours nothing is silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_messages_in_quiet_hours_are_silent() {
    let node = TestNode::start().await;
    let now = time::OffsetDateTime::now_utc();
    let hh_mm = |t: time::OffsetDateTime| format!("{:02}:{:02}", t.hour(), t.minute());
    let window = json!({"quiet_hours": {"tz": "UTC",
        "start": hh_mm(now - time::Duration::hours(1)), "end": hh_mm(now + time::Duration::hours(1))}});
    assert_eq!(patch(&node, "qia", API_KEY, window).await.0, 200);
    let mut tab = node.connect("qia").await;
    tab.counts_until(|c| c.unread_total == 0).await;
    node.send_to(&["qia"], "quiet").await;
    let m = next_message(&mut tab).await;
    assert!(m.silent, "{m:?}");
    let (status, _) = node
        .post(json!({"to": {"users": ["qia"]}, "category": "remind", "body": "loud", "critical": true}))
        .await;
    assert_eq!(status, 202);
    let m = next_message(&mut tab).await;
    assert!(m.critical && !m.silent, "{m:?}");
    // A backlog is never silent; counts as usual.
    let mut late = node.connect("qia").await;
    for _ in 0..2 {
        let m = next_message(&mut late).await;
        assert!(!m.silent, "{m:?}");
    }
    let counts = node.get("/v1/users/qia/counts").await;
    assert_eq!(counts["unread_total"], 2);
    // Quiet hours removed: the next live one is not silent.
    assert_eq!(
        patch(&node, "qia", API_KEY, json!({"quiet_hours": null}))
            .await
            .0,
        200
    );
    next_preferences(&mut tab).await;
    node.send_to(&["qia"], "after").await;
    let m = next_message(&mut tab).await;
    assert!(!m.silent && m.body == "after", "{m:?}");
}
