//! The server API's answers to good and bad requests.

mod common;

use common::{Api, TestNode, API_KEY};
use serde_json::{json, Value};

async fn raw_post(node: &TestNode, key: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(node.http("/v1/messages"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test]
async fn api_key_is_required() {
    let node = TestNode::start().await;
    let body = r#"{"to":{"users":["a"]},"category":"system","body":"x"}"#;
    let (status, json) = raw_post(&node, None, body).await;
    assert_eq!((status, error_code(&json)), (401, "unauthorized"));
    let (status, _) = raw_post(&node, Some("wrong"), body).await;
    assert_eq!(status, 401);
    let (status, _) = raw_post(&node, Some(API_KEY), body).await;
    assert_eq!(status, 202);
    let resp = reqwest::get(node.http("/v1/users/a/presence"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn bad_requests_get_400_with_a_json_error() {
    let node = TestNode::start().await;
    let cases = [
        ("{not json", "bad_request"),
        (r#"{"category":"system","body":"x"}"#, "bad_request"),
        (
            r#"{"to":{"users":["a"]},"category":"system"}"#,
            "bad_request",
        ),
        (
            r#"{"to":{"users":["a"]},"category":"gossip","body":"x"}"#,
            "invalid_field",
        ),
        (
            r#"{"to":{"users":[]},"category":"system","body":"x"}"#,
            "invalid_field",
        ),
        (
            r#"{"to":{"users":["a b"]},"category":"system","body":"x"}"#,
            "invalid_field",
        ),
        (
            r#"{"to":{"users":["a"],"all":true},"category":"system","body":"x"}"#,
            "invalid_field",
        ),
        (
            r#"{"to":{"all":false},"category":"system","body":"x"}"#,
            "invalid_field",
        ),
        (
            r#"{"to":{},"category":"system","body":"x"}"#,
            "invalid_field",
        ),
        (
            r#"{"to":{"users":["a"]},"category":"system","body":"x","data":[1]}"#,
            "invalid_field",
        ),
    ];
    for (body, code) in cases {
        let (status, json) = raw_post(&node, Some(API_KEY), body).await;
        assert_eq!((status, error_code(&json)), (400, code), "{body} -> {json}");
        assert!(json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let too_long =
        json!({"to": {"users": ["a"]}, "category": "system", "body": "x".repeat(70_000)});
    let (status, _) = node.post(too_long).await;
    assert_eq!(status, 400);

    // A body of the wrong shape is named by its path (the send routes parse
    // plainly first and hand a failing body to axum's `Json` for its error).
    let (status, json) = raw_post(
        &node,
        Some(API_KEY),
        r#"{"to":{"users":[7]},"category":"system","body":"x"}"#,
    )
    .await;
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(status, 400, "{json}");
    assert!(message.contains("to.users[0]"), "{message}");
    // A body that is not declared JSON is refused as axum refuses it.
    let resp = reqwest::Client::new()
        .post(node.http("/v1/messages"))
        .bearer_auth(API_KEY)
        .header("content-type", "text/plain")
        .body(r#"{"to":{"users":["a"]},"category":"system","body":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let json: Value = resp.json().await.unwrap();
    assert!(json["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Content-Type")));
}

#[tokio::test]
async fn sends_answer_202_with_ids_and_seqs() {
    let node = TestNode::start().await;
    let json = node.send_to(&["a", "b", "a"], "hi").await;
    assert!(uuid::Uuid::parse_str(json["id"].as_str().unwrap()).is_ok());
    assert_eq!(
        json["stored"],
        json!([{"stream": "inbox", "user": "a", "seq": 1}, {"stream": "inbox", "user": "b", "seq": 1}])
    );
    let json = node.send_to(&["a"], "again").await;
    assert_eq!(json["stored"][0]["seq"], 2);
}

#[tokio::test]
async fn inbox_reads_page_by_page() {
    let node = TestNode::start().await;
    for i in 1..=5 {
        node.send_to(&["ann"], &format!("m{i}")).await;
    }
    let get = |q: &str| {
        let url = node.http(&format!("/v1/users/ann/inbox{q}"));
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, page) = get("?after=1&limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(page["last_seq"], 5);
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(get("?limit=0").await.0, 400);
    assert_eq!(get("?after=x").await.0, 400);
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let node = TestNode::start().await;
    let _c = node.connect("m").await;
    assert_eq!(
        reqwest::get(node.http("/healthz")).await.unwrap().status(),
        200
    );
    assert_eq!(
        reqwest::get(node.http("/readyz")).await.unwrap().status(),
        200
    );
    let text = reqwest::get(node.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("herald_connections{"), "{text}");
    let resp = reqwest::get(node.http("/nope")).await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_batch_stores_each_message_in_order() {
    let node = TestNode::start().await;
    let mut bob = node.connect("bob").await;
    let msg = |to: Value, body: &str| json!({"to": to, "category": "remind", "body": body});
    let (status, json) = node
        .post_to(
            "/v1/messages/batch",
            json!({"messages": [
                msg(json!({"users": ["bob"]}), "one"),
                msg(json!({"users": ["bob", "carol"]}), "two"),
                msg(json!({"users": ["bob"]}), "three"),
            ]}),
        )
        .await;
    assert_eq!(status, 202, "{json}");
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let seqs: Vec<Vec<(String, u64)>> = results
        .iter()
        .map(|r| {
            r["stored"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["user"].as_str().unwrap().to_owned(),
                        s["seq"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(
        seqs,
        [
            vec![("bob".to_owned(), 1)],
            vec![("bob".to_owned(), 2), ("carol".to_owned(), 1)],
            vec![("bob".to_owned(), 3)],
        ]
    );
    for (seq, body) in [(1, "one"), (2, "two"), (3, "three")] {
        let m = bob.message().await;
        assert_eq!((m.seq, m.body.as_str()), (seq, body));
    }
    let ids: std::collections::BTreeSet<&str> =
        results.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "each message has its own id");
}

#[tokio::test]
async fn a_bad_batch_stores_nothing_and_names_the_message() {
    let node = TestNode::start().await;
    let good = json!({"to": {"users": ["dora"]}, "category": "remind", "body": "x"});
    let bad = json!({"to": {"users": ["dora"]}, "category": "gossip", "body": "x"});
    let (status, json) = node
        .post_to("/v1/messages/batch", json!({"messages": [good, bad]}))
        .await;
    assert_eq!(
        (status, error_code(&json)),
        (400, "invalid_field"),
        "{json}"
    );
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("messages[1]: "),
        "{json}"
    );
    assert_eq!(node.get("/v1/users/dora/inbox").await["last_seq"], 0);

    for body in [
        json!({"messages": []}),
        json!({"message": [good]}),
        json!([good]),
    ] {
        let (status, json) = node.post_to("/v1/messages/batch", body).await;
        assert_eq!(status, 400, "{json}");
        assert!(json["error"]["code"].is_string(), "{json}");
    }
    let many: Vec<Value> = (0..=1000).map(|_| good.clone()).collect();
    let (status, json) = node
        .post_to("/v1/messages/batch", json!({"messages": many}))
        .await;
    assert_eq!(
        (status, error_code(&json)),
        (400, "invalid_field"),
        "{json}"
    );
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_413_with_a_json_error() {
    let node = TestNode::start().await;
    let message = json!({"to": {"users": ["a"]}, "category": "remind", "body": "x".repeat(30_000)});
    let messages: Vec<Value> = (0..100).map(|_| message.clone()).collect();
    let (status, json) = node
        .post_to("/v1/messages/batch", json!({ "messages": messages }))
        .await;
    assert_eq!((status, error_code(&json)), (413, "bad_request"), "{json}");
}

/// The series operators read: connections by codec, connects, accepted
/// messages by entry and category, deliveries with their latency, handshake
/// refusals, readiness, build and process info.
#[tokio::test]
async fn metrics_answer_operators_questions() {
    use herald_protocol::Codec;
    let node = TestNode::start().await;
    let mut json = node.connect("mia").await;
    let _msgpack = common::Client::connect(&node, "ned", Codec::MsgPack, None).await;
    node.send_to(&["mia"], "hello").await;
    assert_eq!(json.message().await.body, "hello");
    let refused = reqwest::get(node.http("/ws?token=forged")).await.unwrap();
    assert_eq!(refused.status(), 401);
    let text = reqwest::get(node.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    };
    assert_eq!(value("herald_connections{codec=\"json\""), 1.0);
    assert_eq!(value("herald_connections{codec=\"msgpack\""), 1.0);
    assert_eq!(value("herald_connects_total"), 2.0);
    assert_eq!(
        value("herald_messages_accepted_total{category=\"remind\",entry=\"api\""),
        1.0
    );
    assert!(value("herald_deliveries_total") >= 1.0);
    assert!(value("herald_delivery_latency_seconds_count") >= 1.0);
    assert!(text
        .lines()
        .any(|l| l.starts_with("herald_delivery_latency_seconds_bucket{")
            && l.contains("le=\"0.0001\"")));
    assert_eq!(
        value("herald_handshake_refusals_total{cause=\"unauthorized\""),
        1.0
    );
    assert_eq!(value("herald_ready"), 1.0);
    assert_eq!(value("herald_build_info{commit="), 1.0);
    assert!(value("herald_process_resident_memory_bytes") > 0.0);
    assert!(value("herald_process_open_fds") > 0.0);
    assert!(text.contains("herald_outbound_queue_high_water"));
}
