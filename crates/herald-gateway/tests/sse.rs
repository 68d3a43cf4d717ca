//! The WebSocket fallback: `GET /sse` (Server-Sent Events with resumable
//! ids), `POST /v1/me/requests`, and dev mode's routes — against a real
//! node over real HTTP.

mod common;

use common::{Api, TestNode, WAIT};
use serde_json::{json, Value};

/// One SSE stream, read event by event.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

/// An event: its `id:` (if any) and its `data:` as JSON.
#[derive(Debug)]
struct Event {
    id: Option<String>,
    data: Value,
}

impl Events {
    async fn open(node: &TestNode, user: &str, last_event_id: Option<&str>) -> Events {
        let url = node.http(&format!("/sse?token={}&device=web", node.token(user)));
        let mut req = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(kind, "text/event-stream");
        Events {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped).
    async fn next(&mut self) -> Event {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).unwrap());
                    }
                }
                if let Some(data) = data {
                    return Event { id, data };
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk())
                .await
                .expect("an event in time")
                .unwrap()
                .expect("the stream goes on");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event of `kind` (others skipped).
    async fn next_of(&mut self, kind: &str) -> Event {
        loop {
            let event = self.next().await;
            if event.data["type"] == kind {
                return event;
            }
        }
    }
}

async fn request(node: &TestNode, user: &str, frame: Value) -> (u16, Value) {
    let url = node.http(&format!(
        "/v1/me/requests?device=web&token={}",
        node.token(user)
    ));
    let resp = reqwest::Client::new()
        .post(url)
        .json(&frame)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A `Last-Event-ID` past the store's end (the store went back: a failover
/// lost its newest messages) gets a `reset` to the device's acknowledged
/// cursor, whose `id:` moves the browser's position back, then what the
/// store has after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_past_the_store_s_end_is_reset() {
    let node = TestNode::start().await;
    node.send_to(&["ria"], "one").await;
    node.send_to(&["ria"], "two").await;
    let mut events = Events::open(&node, "ria", Some("7.0")).await;
    events.next_of("welcome").await;
    let reset = events.next().await;
    assert_eq!(
        (
            reset.data["type"].as_str(),
            reset.data["seq"].as_u64(),
            reset.id.as_deref()
        ),
        (Some("reset"), Some(0), Some("0.0")),
        "{reset:?}"
    );
    let one = events.next_of("message").await;
    assert_eq!(
        (one.data["body"].as_str(), one.id.as_deref()),
        (Some("one"), Some("1.0"))
    );
    let two = events.next_of("message").await;
    assert_eq!(two.id.as_deref(), Some("2.0"));
}

/// Welcome, messages with `<inbox>.<all>` ids, counts and receipts arrive
/// as events; a reconnect with `Last-Event-ID` resumes after it, nothing
/// repeated or missed; requests go over `POST /v1/me/requests`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_resume_from_the_last_event_id() {
    let node = TestNode::start().await;
    let mut events = Events::open(&node, "sia", None).await;
    let welcome = events.next().await;
    assert_eq!(welcome.data["type"], "welcome", "{welcome:?}");
    assert_eq!(welcome.id, None);
    events.next_of("counts").await;
    node.send_to(&["sia"], "one").await;
    let first = events.next_of("message").await;
    assert_eq!(first.data["body"], "one");
    assert_eq!(first.id.as_deref(), Some("1.0"));
    let (status, _) = node
        .post(json!({"to": {"all": true}, "category": "announcement", "body": "all"}))
        .await;
    assert_eq!(status, 202);
    let announcement = events.next_of("message").await;
    assert_eq!(announcement.id.as_deref(), Some("1.1"));
    drop(events);

    node.send_to(&["sia"], "two").await;
    let mut events = Events::open(&node, "sia", Some("1.1")).await;
    events.next_of("welcome").await;
    let second = events.next_of("message").await;
    assert_eq!(
        (second.data["body"].as_str(), second.id.as_deref()),
        (Some("two"), Some("2.1"))
    );

    // Requests over HTTP: a private message, its receipt as an event.
    let (status, reply) = request(
        &node,
        "tom",
        json!({"type": "send", "rid": 1, "to": "sia", "body": "hi"}),
    )
    .await;
    assert_eq!(
        (status, reply["type"].as_str(), reply["ok"].as_bool()),
        (200, Some("reply"), Some(true)),
        "{reply}"
    );
    let hi = events.next_of("message").await;
    assert_eq!(
        (hi.data["from"].as_str(), hi.id.as_deref()),
        (Some("tom"), Some("3.1"))
    );
    let mut toms = Events::open(&node, "tom", None).await;
    toms.next_of("counts").await;
    let (status, _) = request(&node, "sia", json!({"type": "ack", "seq": 3})).await;
    assert_eq!(status, 204);
    let receipt = toms.next_of("receipt").await;
    assert_eq!(
        (
            receipt.data["peer"].as_str(),
            receipt.data["state"].as_str()
        ),
        (Some("sia"), Some("delivered"))
    );
    let (status, reply) = request(
        &node,
        "sia",
        json!({"type": "mark", "rid": "m", "state": "read", "all": true}),
    )
    .await;
    assert_eq!(
        (status, reply["changed"].as_u64()),
        (200, Some(4)),
        "{reply}"
    );
    while events.next_of("counts").await.data["unread_total"] != 0 {}
    assert_eq!(toms.next_of("receipt").await.data["state"], "read");

    // The acknowledged cursor is the device's: a new stream without an id
    // starts after it.
    drop(events);
    let mut events = Events::open(&node, "sia", None).await;
    events.next_of("welcome").await;
    node.send_to(&["sia"], "four").await;
    let four = events.next_of("message").await;
    assert_eq!(four.data["body"], "four", "{four:?}");
}

/// Snooze over requests (the memory backend, in process): the stream's
/// counts drop at once, the `snoozed` history lists the message with its
/// `until`, and at `until` the stream gets `changed` (`unsnoozed`) and the
/// counts back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snooze_over_requests_comes_back_on_the_event_stream() {
    let node = TestNode::start().await;
    let mut events = Events::open(&node, "napper", None).await;
    events.next_of("counts").await;
    let sent = node.send_to(&["napper"], "later").await;
    events.next_of("message").await;
    while events.next_of("counts").await.data["unread_total"] != 1 {}
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let until = now + 800;
    let (status, reply) = request(
        &node,
        "napper",
        json!({"type": "mark", "rid": 1, "state": "snoozed", "ids": [sent["id"]], "until": until}),
    )
    .await;
    assert_eq!(
        (status, reply["changed"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
    while events.next_of("counts").await.data["unread_total"] != 0 {}
    let (_, page) = request(
        &node,
        "napper",
        json!({"type": "history", "rid": 2, "snoozed": true}),
    )
    .await;
    let listed = page["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{page}");
    assert_eq!(
        (listed[0]["state"].as_str(), listed[0]["until"].as_i64()),
        (Some("snoozed"), Some(until))
    );
    let (_, page) = request(&node, "napper", json!({"type": "history", "rid": 3})).await;
    assert_eq!(page["messages"], json!([]), "{page}");
    let changed = events.next_of("changed").await;
    assert_eq!(
        changed.data,
        json!({"type": "changed", "ids": [sent["id"]], "state": "unsnoozed"})
    );
    while events.next_of("counts").await.data["unread_total"] != 1 {}
}

/// A scheduled send (the memory backend, in process) reaches the event
/// stream at its time, once, with the scheduled id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_send_arrives_on_the_event_stream_at_its_time() {
    let node = TestNode::start().await;
    let mut events = Events::open(&node, "planner", None).await;
    events.next_of("counts").await;
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let at = now + 700;
    let (status, reply) = node
        .post(
            json!({"to": {"users": ["planner"]}, "category": "remind", "body": "on time",
            "deliver_at": at}),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    let id = reply["scheduled"].clone();
    let message = events.next_of("message").await;
    let arrived = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    assert_eq!(
        (&message.data["id"], &message.data["body"]),
        (&id, &json!("on time"))
    );
    assert!(
        arrived >= at - 50 && arrived <= at + 1_000,
        "{} ms off",
        arrived - at
    );
    // Recorded delivered once its appends are done (just after the push).
    let path = format!("/v1/scheduled/{}", id.as_str().unwrap());
    common::eventually("the send recorded delivered", || async {
        node.get(&path).await["state"] == "delivered"
    })
    .await;
    let (_, page) = request(&node, "planner", json!({"type": "history", "rid": 1})).await;
    assert_eq!(
        page["messages"].as_array().unwrap().len(),
        1,
        "once: {page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_http_refuse_what_is_not_a_request() {
    let node = TestNode::start().await;
    let (status, reply) = request(&node, "ua", json!({"type": "ping", "rid": "p"})).await;
    assert_eq!(
        (status, reply["ok"].as_bool()),
        (200, Some(true)),
        "{reply}"
    );
    let (status, body) = request(&node, "ua", json!({"type": "sync", "rid": 1, "since": 0})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let (status, body) = request(&node, "ua", json!({"type": "nope", "rid": 1})).await;
    assert_eq!(status, 400, "{body}");
    let (status, reply) = request(
        &node,
        "ua",
        json!({"type": "send", "rid": 2, "to": "", "body": "x"}),
    )
    .await;
    assert_eq!(
        (status, reply["ok"].as_bool()),
        (200, Some(false)),
        "{reply}"
    );
    assert_eq!(reply["error"]["code"], "invalid_field");
    let resp = reqwest::Client::new()
        .post(node.http("/v1/me/requests"))
        .json(&json!({"type": "ping", "rid": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = reqwest::Client::new()
        .get(node.http("/sse?token=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = reqwest::Client::new()
        .get(node.http(&format!("/sse?token={}", node.token("ua"))))
        .header("Last-Event-ID", "garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// Dev mode: tokens, key-less sends and the demo files; none of it
/// without `dev.enabled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_routes_exist_only_in_dev_mode() {
    let off = TestNode::start().await;
    let resp = reqwest::Client::new()
        .post(off.http("/dev/token"))
        .json(&json!({"user": "vi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let dir = std::env::temp_dir().join(format!("herald-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("sdk")).unwrap();
    std::fs::write(dir.join("index.html"), "<title>demo</title>").unwrap();
    std::fs::write(dir.join("sdk/herald.js"), "export {}").unwrap();
    let mut settings = common::settings();
    settings.dev.enabled = true;
    settings.dev.demo_dir = dir.to_string_lossy().into_owned();
    settings.dev.sdk_dir = dir.join("sdk").to_string_lossy().into_owned();
    let on = TestNode::with(settings).await;
    let http = reqwest::Client::new();
    let token: Value = http
        .post(on.http("/dev/token"))
        .json(&json!({"user": "vi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().expect("a token").to_owned();
    let mut tab =
        common::Client::connect_to(on.addr, &token, herald_protocol::Codec::Json, None).await;
    let resp = http
        .post(on.http("/dev/messages"))
        .json(&json!({"to": {"users": ["vi"]}, "category": "system", "body": "from the demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(tab.message().await.body, "from the demo");
    let page = http.get(on.http("/")).send().await.unwrap();
    assert_eq!(page.text().await.unwrap(), "<title>demo</title>");
    let sdk = http.get(on.http("/sdk/herald.js")).send().await.unwrap();
    assert_eq!(sdk.status(), 200);
    assert!(sdk.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    let bad = http
        .post(on.http("/dev/token"))
        .json(&json!({"user": "a b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A send that collapses is told over SSE as over a WebSocket: the new
/// message (`collapsed`, `replaces`), then `changed` `replaced`, then counts
/// that count the group once.
#[tokio::test]
async fn a_collapsed_send_is_told_over_sse() {
    let node = TestNode::start().await;
    let mut events = Events::open(&node, "sue", None).await;
    events.next_of("counts").await;
    let like = json!({"to": {"users": ["sue"]}, "category": "remind", "body": "like",
        "group_key": "likes:9"});
    let (_, first) = node.post(like.clone()).await;
    let (_, second) = node.post(like).await;
    assert_eq!(events.next_of("message").await.data["id"], first["id"]);
    let replacing = events.next_of("message").await.data;
    assert_eq!(replacing["id"], second["id"]);
    assert_eq!(
        (
            replacing["collapsed"].clone(),
            replacing["replaces"].clone()
        ),
        (json!(2), first["id"].clone())
    );
    let changed = events.next().await.data;
    assert_eq!(
        changed,
        json!({"type": "changed", "ids": [first["id"]], "state": "replaced", "by": second["id"]})
    );
    let counts = events.next().await.data;
    assert_eq!(
        (counts["type"].clone(), counts["unread_total"].clone()),
        (json!("counts"), json!(1)),
        "{counts}"
    );
}

/// Preferences over the fallback: read and changed with
/// `POST /v1/me/requests`, the change pushed as an SSE event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_change_over_http_and_arrive_as_an_event() {
    let node = TestNode::start().await;
    let mut events = Events::open(&node, "pia", None).await;
    events.next_of("counts").await;
    let (status, reply) = request(&node, "pia", json!({"type": "preferences", "rid": 1})).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["preferences"]["categories"]["remind"]["in_app"], true);
    let (status, reply) = request(
        &node,
        "pia",
        json!({"type": "set_preferences", "rid": 2, "preferences": {"categories": {"remind": {"in_app": false}}}}),
    )
    .await;
    assert_eq!((status, &reply["ok"]), (200, &json!(true)), "{reply}");
    assert_eq!(
        reply["preferences"]["categories"]["remind"]["in_app"],
        false
    );
    let pushed = events.next_of("preferences").await;
    assert_eq!(
        pushed.data["preferences"]["categories"]["remind"],
        json!({"in_app": false, "fallback": true})
    );
    let (_, refused) = request(
        &node,
        "pia",
        json!({"type": "set_preferences", "rid": 3, "preferences": {"quiet_hours": {"tz": "Mars/Base", "start": "22:00", "end": "07:00"}}}),
    )
    .await;
    assert_eq!(refused["error"]["code"], "invalid_field", "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("quiet_hours.tz")));
}
