//! Tags and severity across two real `herald` processes on one real
//! Redis: a send's tags and severity reach every tab, `unread_by_severity`
//! follows a filtered "mark all read" made on the other node, history and
//! the `counts` request filter over the WebSocket, `POST /v1/me/requests`
//! and the server API; announcements of any severity counted per user on
//! both nodes; hostile input is refused naming the field.

mod common;

use common::process::ProcessNode;
use common::{Api, API_KEY, WAIT};
use herald_protocol::{Codec, UnreadBySeverity};
use herald_testing::RedisServer;
use serde_json::{json, Value};

fn sev(low: u64, normal: u64, high: u64, critical: u64) -> UnreadBySeverity {
    UnreadBySeverity {
        low,
        normal,
        high,
        critical,
    }
}

/// GET with the API key: status and JSON body.
async fn get(node: &impl Api, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(node.http(path))
        .bearer_auth(API_KEY)
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// One request frame over `POST /v1/me/requests` as `user`.
async fn me_request(node: &ProcessNode, user: &str, frame: Value) -> Value {
    let url = node.http(&format!(
        "/v1/me/requests?device=web&token={}",
        common::process::token(user)
    ));
    let resp = reqwest::Client::new()
        .post(url)
        .json(&frame)
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_severity_filter_and_count_across_nodes() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    let mut tab_a = a.connect("una").await;
    let mut tab_b = b.connect_with("una", Codec::MsgPack, None).await;
    for tab in [&mut tab_a, &mut tab_b] {
        tab.counts_until(|c| c.unread_total == 0).await;
    }
    let send = |tags: Value, severity: Value| {
        let mut body = json!({"to": {"users": ["una"]}, "category": "remind", "body": "b"});
        if !tags.is_null() {
            body["tags"] = tags;
        }
        if !severity.is_null() {
            body["severity"] = severity;
        }
        body
    };
    let (status, first) = a
        .post(send(json!(["team:42", "billing"]), json!("high")))
        .await;
    assert_eq!(status, 202, "{first}");
    for tab in [&mut tab_a, &mut tab_b] {
        let m = tab.message().await;
        assert_eq!(m.tags, ["billing", "team:42"]);
        assert_eq!(m.severity, herald_protocol::Severity::High);
        let c = tab.counts_until(|c| c.unread_total == 1).await;
        assert_eq!(c.unread_by_severity, sev(0, 0, 1, 0));
    }
    for (tags, severity) in [
        (json!(["billing"]), json!("critical")),
        (json!(["ops"]), Value::Null),
        (Value::Null, json!("low")),
    ] {
        let (status, body) = b.post(send(tags, severity)).await;
        assert_eq!(status, 202, "{body}");
    }
    for tab in [&mut tab_a, &mut tab_b] {
        let c = tab.counts_until(|c| c.unread_total == 4).await;
        assert_eq!(c.unread_by_severity, sev(1, 1, 1, 1));
    }
    // The counts request, over the WebSocket and over requests.
    tab_a
        .send_raw(br#"{"type":"counts","rid":7,"tags":["billing"]}"#.to_vec())
        .await;
    let reply = tab_a.reply().await;
    assert_eq!(reply.unread, Some(2), "{reply:?}");
    let reply = me_request(
        &b,
        "una",
        json!({"type": "counts", "rid": 8, "severity": "critical"}),
    )
    .await;
    assert_eq!(reply["unread"], 1, "{reply}");
    // History filters: WebSocket, requests, API.
    tab_a
        .send_raw(br#"{"type":"history","rid":9,"tags":["ops","team:42"]}"#.to_vec())
        .await;
    assert_eq!(tab_a.reply().await.messages.unwrap().len(), 2);
    let reply = me_request(
        &a,
        "una",
        json!({"type": "history", "rid": 10, "severity": "low"}),
    )
    .await;
    assert_eq!(reply["messages"].as_array().unwrap().len(), 1, "{reply}");
    let (status, page) = get(&b, "/v1/users/una/messages?tags=billing&severity=high").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["messages"][0]["tags"], json!(["billing", "team:42"]));
    let (status, counts) = get(&a, "/v1/users/una/counts?tags=billing,ops").await;
    assert_eq!(
        (status, counts["unread"].clone()),
        (200, json!(3)),
        "{counts}"
    );
    let (_, counts) = get(&a, "/v1/users/una/counts").await;
    assert_eq!(
        counts["unread_by_severity"],
        json!({"low": 1, "normal": 1, "high": 1, "critical": 1})
    );
    // Mark all read with tag billing: one request on node A; the tab on
    // node B gets counts with both billing messages gone.
    tab_a
        .send_raw(
            br#"{"type":"mark","rid":11,"state":"read","all":true,"tags":["billing"]}"#.to_vec(),
        )
        .await;
    assert_eq!(tab_a.reply().await.changed, Some(2));
    let c = tab_b.counts_until(|c| c.unread_total == 2).await;
    assert_eq!(c.unread_by_severity, sev(1, 1, 0, 0));
    // The API's mark takes the same filter.
    let (status, body) = b
        .post_to(
            "/v1/users/una/mark",
            json!({"state": "archived", "all": true, "severity": "low"}),
        )
        .await;
    assert_eq!((status, body["changed"].clone()), (200, json!(1)), "{body}");
    let c = tab_a.counts_until(|c| c.unread_total == 1).await;
    assert_eq!(c.unread_by_severity, sev(0, 1, 0, 0));
}

/// Announcements (`to.all`, stored once) of any severity: every user's
/// tabs on both nodes count them in `unread_by_severity`; one user's read
/// on one node moves that user's counts on the other node's tab and no one
/// else's; a user who never connected counts them at their first connect;
/// the `counts` request and the history filter see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn severe_announcements_count_per_user_across_nodes() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    let mut ora_a = a.connect("ora").await;
    let mut ora_b = b.connect_with("ora", Codec::MsgPack, None).await;
    let mut pia_b = b.connect("pia").await;
    for tab in [&mut ora_a, &mut ora_b, &mut pia_b] {
        tab.counts_until(|c| c.unread_total == 0).await;
    }
    let mut ids = Vec::new();
    for (severity, tags) in [
        ("critical", json!(["ops"])),
        ("high", json!([])),
        ("normal", json!([])),
    ] {
        let (status, body) = a
            .post(
                json!({"to": {"all": true}, "category": "announcement", "body": "b",
                         "severity": severity, "tags": tags}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    for tab in [&mut ora_a, &mut ora_b, &mut pia_b] {
        let m = tab.message().await;
        assert_eq!(m.severity, herald_protocol::Severity::Critical);
        assert_eq!(m.tags, ["ops"]);
        let c = tab.counts_until(|c| c.unread_total == 3).await;
        assert_eq!(c.unread_by_severity, sev(0, 1, 1, 1));
    }
    // Ora reads the critical one on node B (API): her tab on node A
    // follows; Pia's numbers stay.
    let (status, body) = b
        .post_to(
            "/v1/users/ora/mark",
            json!({"state": "read", "ids": [ids[0]]}),
        )
        .await;
    assert_eq!((status, body["changed"].clone()), (200, json!(1)), "{body}");
    let c = ora_a.counts_until(|c| c.unread_total == 2).await;
    assert_eq!(c.unread_by_severity, sev(0, 1, 1, 0));
    let (_, counts) = get(&a, "/v1/users/pia/counts").await;
    assert_eq!(
        counts["unread_by_severity"],
        json!({"low": 0, "normal": 1, "high": 1, "critical": 1}),
        "{counts}"
    );
    // Pia marks the high ones read with a filtered mark-all over the
    // WebSocket on node B; the filters see announcements.
    pia_b
        .send_raw(br#"{"type":"counts","rid":3,"severity":"high"}"#.to_vec())
        .await;
    assert_eq!(pia_b.reply().await.unread, Some(1));
    pia_b
        .send_raw(
            br#"{"type":"mark","rid":4,"state":"read","all":true,"severity":"high"}"#.to_vec(),
        )
        .await;
    assert_eq!(pia_b.reply().await.changed, Some(1));
    // The pushed counts may come before the reply (which skips them).
    let c = match pia_b.counts.clone() {
        Some(c) if c.unread_total == 2 => c,
        _ => pia_b.counts_until(|c| c.unread_total == 2).await,
    };
    assert_eq!(c.unread_by_severity, sev(0, 1, 0, 1));
    let (status, page) = get(&a, "/v1/users/pia/messages?severity=critical&tags=ops").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["messages"][0]["id"], json!(ids[0]));
    // A user who never connected: the first counts frame has them all.
    let mut quinn = a.connect_with("quinn", Codec::MsgPack, None).await;
    let c = quinn.counts_until(|c| c.unread_total == 3).await;
    assert_eq!(c.unread_by_severity, sev(0, 1, 1, 1));
    let c = ora_b.counts_until(|c| c.unread_total == 2).await;
    assert_eq!(c.unread_by_severity, sev(0, 1, 1, 0));
}

/// 11 tags, a tag with a space or upper case, a tag over 64 bytes and an
/// unknown severity: 400 naming the field, on every route and frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tags_and_severities_are_refused_naming_the_field() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let node = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let mut ws = node.connect("vic").await;
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let bad_tags = [
        json!(eleven),
        json!(["has space"]),
        json!(["Billing"]),
        json!(["x".repeat(65)]),
    ];
    for tags in &bad_tags {
        let (status, body) = node
            .post(
                json!({"to": {"users": ["vic"]}, "category": "remind", "body": "b", "tags": tags}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("tags: "),
            "{body}"
        );
        let (status, body) = node
            .post_to(
                "/v1/users/vic/mark",
                json!({"state": "read", "all": true, "tags": tags}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("tags: "),
            "{body}"
        );
        for kind in ["mark", "history", "counts", "send"] {
            let mut frame = json!({"type": kind, "rid": 1, "tags": tags});
            if kind == "mark" {
                frame["state"] = json!("read");
                frame["all"] = json!(true);
            }
            if kind == "send" {
                frame["to"] = json!("wes");
                frame["body"] = json!("b");
            }
            ws.send_raw(serde_json::to_vec(&frame).unwrap()).await;
            let error = ws.reply().await.error.expect("an error reply");
            assert!(error.message.starts_with("tags: "), "{kind}: {error:?}");
        }
    }
    let query = format!("/v1/users/vic/messages?tags={}", eleven.join(","));
    let (status, body) = get(&node, &query).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("tags: "));
    for path in [
        "/v1/users/vic/messages?tags=a%20b",
        "/v1/users/vic/counts?tags=Billing",
    ] {
        let (status, body) = get(&node, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("tags: "),
            "{body}"
        );
    }
    for path in [
        "/v1/users/vic/messages?severity=urgent",
        "/v1/users/vic/counts?severity=urgent",
    ] {
        let (status, body) = get(&node, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("severity: "),
            "{body}"
        );
    }
    let (status, body) = node
        .post(json!({"to": {"users": ["vic"]}, "category": "remind", "body": "b", "severity": "urgent"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("severity: "),
        "{body}"
    );
    let (status, body) = node
        .post(json!({"to": {"all": true}, "category": "announcement", "body": "b", "severity": "urgent"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("severity: "),
        "{body}"
    );
    ws.send_raw(br#"{"type":"counts","rid":2,"severity":"urgent"}"#.to_vec())
        .await;
    let error = ws.reply().await.error.expect("an error reply");
    assert!(error.message.starts_with("severity: "), "{error:?}");
    // 10 tags of 64 bytes each are fine.
    let ten: Vec<String> = (0..10).map(|i| format!("{i}{}", "x".repeat(63))).collect();
    let (status, body) = node
        .post(json!({"to": {"users": ["vic"]}, "category": "remind", "body": "b", "tags": ten}))
        .await;
    assert_eq!(status, 202, "{body}");
}
