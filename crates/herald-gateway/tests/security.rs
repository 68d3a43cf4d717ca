//! Who may do what: API keys and their scopes on every `/v1` route, key
//! rotation without a restart (SIGHUP) for API keys and token keys, and
//! users confined to their own data. The catalogue is docs/security.md.

mod common;

use common::process::ProcessNode;
use common::{Api, TestNode};
use herald_gateway::api_keys::Scope;
use herald_gateway::settings::ApiKeySettings;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const SEND_KEY: &str = "send-only-key-0123456789";
const USERS_KEY: &str = "users-only-key-0123456789";

/// Every `/v1` route with the scope it needs and a body that gets past
/// authorization.
fn routes() -> Vec<(&'static str, &'static str, Scope, serde_json::Value)> {
    let send = json!({"to": {"users": ["x"]}, "category": "remind", "body": "b"});
    vec![
        ("POST", "/v1/messages", Scope::Send, send.clone()),
        (
            "POST",
            "/v1/messages/batch",
            Scope::Send,
            json!({"messages": [send]}),
        ),
        (
            "POST",
            "/v1/topics/t:1/messages",
            Scope::Send,
            json!({"body": "b"}),
        ),
        (
            "GET",
            "/v1/jobs/00000000-0000-0000-0000-000000000000",
            Scope::Send,
            json!(null),
        ),
        ("GET", "/v1/presence", Scope::Users, json!(null)),
        ("GET", "/v1/users/x/presence", Scope::Users, json!(null)),
        ("GET", "/v1/users/x/inbox", Scope::Users, json!(null)),
        (
            "POST",
            "/v1/users/x/mark",
            Scope::Users,
            json!({"state": "read", "all": true}),
        ),
        ("GET", "/v1/users/x/counts", Scope::Users, json!(null)),
        ("GET", "/v1/users/x/messages", Scope::Users, json!(null)),
        ("GET", "/v1/users/x/topics", Scope::Users, json!(null)),
        ("PUT", "/v1/users/x/topics/t:1", Scope::Users, json!(null)),
        (
            "DELETE",
            "/v1/users/x/topics/t:1",
            Scope::Users,
            json!(null),
        ),
        (
            "GET",
            "/v1/topics/t:1/subscribers",
            Scope::Users,
            json!(null),
        ),
        (
            "GET",
            "/v1/users/x/conversations",
            Scope::Users,
            json!(null),
        ),
        (
            "GET",
            "/v1/users/x/conversations/y",
            Scope::Users,
            json!(null),
        ),
        ("GET", "/v1/users/x/blocks", Scope::Users, json!(null)),
        ("PUT", "/v1/users/x/blocks/y", Scope::Users, json!(null)),
        ("DELETE", "/v1/users/x/blocks/y", Scope::Users, json!(null)),
        ("GET", "/v1/webhooks/dead", Scope::Admin, json!(null)),
        (
            "POST",
            "/v1/webhooks/dead/00000000-0000-0000-0000-000000000000/retry",
            Scope::Admin,
            json!(null),
        ),
        ("GET", "/v1/users/x/export", Scope::Admin, json!(null)),
        ("DELETE", "/v1/users/x", Scope::Admin, json!(null)),
    ]
}

async fn call(
    node: &impl Api,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &serde_json::Value,
) -> u16 {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), node.http(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if !body.is_null() {
        req = req.json(body);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_route_needs_a_key_with_its_scope() {
    let mut settings = common::settings();
    settings.api.keys = vec![
        ApiKeySettings {
            name: "sender".into(),
            key: SEND_KEY.into(),
            scopes: vec![Scope::Send],
        },
        ApiKeySettings {
            name: "reader".into(),
            key: USERS_KEY.into(),
            scopes: vec![Scope::Users],
        },
    ];
    let node = TestNode::with(settings).await;
    for (method, path, scope, body) in routes() {
        let what = format!("{method} {path}");
        assert_eq!(
            call(&node, method, path, None, &body).await,
            401,
            "{what}: no key"
        );
        assert_eq!(
            call(&node, method, path, Some("wrong-key"), &body).await,
            401,
            "{what}: wrong key"
        );
        let (rights, others) = match scope {
            Scope::Send => (vec![SEND_KEY, common::API_KEY], vec![USERS_KEY]),
            Scope::Admin => (vec![common::API_KEY], vec![SEND_KEY, USERS_KEY]),
            _ => (vec![USERS_KEY, common::API_KEY], vec![SEND_KEY]),
        };
        for other in others {
            assert_eq!(
                call(&node, method, path, Some(other), &body).await,
                403,
                "{what}: other scope"
            );
        }
        for key in rights {
            let status = call(&node, method, path, Some(key), &body).await;
            assert!(![401, 403].contains(&status), "{what} with {key}: {status}");
        }
    }
    // A user token is not an API key, nor the reverse.
    let token = node.token("x");
    assert_eq!(
        call(
            &node,
            "GET",
            "/v1/users/x/counts",
            Some(&token),
            &json!(null)
        )
        .await,
        401
    );
    let resp = reqwest::Client::new()
        .post(node.http("/v1/me/requests"))
        .bearer_auth(common::API_KEY)
        .json(&json!({"type": "ping", "rid": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

fn write_config(path: &std::path::Path, api_keys: &[&str], token_kids: &[(&str, &str)]) {
    let mut toml = String::new();
    for key in api_keys {
        toml.push_str(&format!(
            "[[api.keys]]\nname = \"{key}\"\nkey = \"{key}\"\nscopes = [\"send\"]\n\n"
        ));
    }
    for (kid, secret) in token_kids {
        toml.push_str(&format!(
            "[[auth.keys]]\nkid = \"{kid}\"\nalg = \"HS256\"\nsecret = \"{secret}\"\n\n"
        ));
    }
    std::fs::write(path, toml).unwrap();
}

fn token(kid: &str, secret: &str) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.into());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &header,
        &json!({"sub": "rot", "exp": exp}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// `POST /v1/me/requests` ping with a user token: its status.
async fn ping_as(node: &ProcessNode, token: &str) -> u16 {
    reqwest::Client::new()
        .post(node.http("/v1/me/requests"))
        .bearer_auth(token)
        .json(&json!({"type": "ping", "rid": 1}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Old and new keys are valid together after a SIGHUP, the old one stops
/// after the next; a broken file keeps the keys there were. No restart:
/// the same process and connection throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_token_keys_rotate_on_sighup() {
    let redis = tokio::task::spawn_blocking(herald_testing::RedisServer::start)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("herald-rotate-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("herald.toml");
    let (old_key, new_key) = ("old-api-key-0123456789", "new-api-key-0123456789");
    write_config(&file, &[old_key], &[("k1", "first-secret")]);
    let node = ProcessNode::start(
        "rot",
        &redis.url(),
        &[("HERALD_CONFIG", file.to_str().unwrap())],
    )
    .await;
    let send = json!({"to": {"users": ["rot"]}, "category": "remind", "body": "b"});
    let (t1, t2) = (token("k1", "first-secret"), token("k2", "second-secret"));
    let mut tab =
        common::Client::connect_to(node.addr, &t1, herald_protocol::Codec::Json, None).await;
    assert_eq!(
        call(&node, "POST", "/v1/messages", Some(old_key), &send).await,
        202
    );
    assert_eq!(
        call(&node, "POST", "/v1/messages", Some(new_key), &send).await,
        401
    );
    assert_eq!(ping_as(&node, &t2).await, 401);

    write_config(
        &file,
        &[old_key, new_key],
        &[("k1", "first-secret"), ("k2", "second-secret")],
    );
    node.signal("HUP");
    common::eventually("the new keys", || async {
        call(&node, "POST", "/v1/messages", Some(new_key), &send).await == 202
            && ping_as(&node, &t2).await == 200
    })
    .await;
    assert_eq!(
        call(&node, "POST", "/v1/messages", Some(old_key), &send).await,
        202
    );
    assert_eq!(ping_as(&node, &t1).await, 200);

    std::fs::write(&file, "[[api.keys]]\nname = \"broken\"\n").unwrap();
    node.signal("HUP");
    common::eventually("the broken file refused", || async {
        let metrics = reqwest::get(node.http("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics.contains("herald_credential_reloads_total{")
            && metrics.lines().any(|l| {
                l.starts_with("herald_credential_reloads_total")
                    && l.contains("result=\"error\"")
                    && l.ends_with(" 1")
            })
    })
    .await;
    assert_eq!(
        call(&node, "POST", "/v1/messages", Some(old_key), &send).await,
        202,
        "a broken file keeps the keys"
    );

    write_config(&file, &[new_key], &[("k2", "second-secret")]);
    node.signal("HUP");
    common::eventually("the old keys gone", || async {
        call(&node, "POST", "/v1/messages", Some(old_key), &send).await == 401
            && ping_as(&node, &t1).await == 401
    })
    .await;
    assert_eq!(
        call(&node, "POST", "/v1/messages", Some(new_key), &send).await,
        202
    );
    // The connection opened with the old token lives on, and got every send.
    for _ in 0..5 {
        assert_eq!(tab.message().await.body, "b");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A user reaches only their own data: nothing in a frame names another
/// user's inbox, and ids or peers of someone else's messages change or
/// reveal nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_touches_only_their_own_inbox() {
    use herald_protocol::{ClientFrame, MarkSelector, MarkState};
    let node = TestNode::start().await;
    let sent = node.send_to(&["victim"], "secret").await;
    let id: uuid::Uuid = sent["id"].as_str().unwrap().parse().unwrap();
    let mut victim = node.connect("victim").await;
    assert_eq!(victim.message().await.body, "secret");
    let mut mallory = node.connect("mallory").await;
    // Marking the victim's message by id: nothing changes for anyone.
    mallory
        .send(ClientFrame::Mark {
            rid: 1.into(),
            state: MarkState::Deleted,
            selector: MarkSelector {
                ids: Some(vec![id]),
                ..Default::default()
            },
            until: None,
            tags: None,
            severity: None,
        })
        .await;
    assert_eq!(mallory.reply().await.changed, Some(0));
    // Her conversation "with the victim" holds only what passed between them.
    mallory
        .send(ClientFrame::Conversation {
            rid: 2.into(),
            peer: "victim".into(),
            before: None,
            limit: None,
        })
        .await;
    assert_eq!(mallory.reply().await.messages, Some(vec![]));
    mallory
        .send(ClientFrame::History {
            rid: 3.into(),
            category: None,
            state: None,
            before: None,
            limit: None,
            snoozed: None,
            tags: None,
            severity: None,
        })
        .await;
    assert_eq!(mallory.reply().await.messages, Some(vec![]));
    // Topics, blocks, conversations, counts: each names only her own.
    for (rid, frame) in [
        (
            4,
            ClientFrame::Subscribe {
                rid: 4.into(),
                topic: "user:victim".into(),
            },
        ),
        (
            5,
            ClientFrame::Block {
                rid: 5.into(),
                user: "victim".into(),
            },
        ),
        (
            6,
            ClientFrame::Mark {
                rid: 6.into(),
                state: MarkState::Read,
                selector: MarkSelector {
                    all: Some(true),
                    ..Default::default()
                },
                until: None,
                tags: None,
                severity: None,
            },
        ),
    ] {
        mallory.send(frame).await;
        let reply = mallory.reply().await;
        assert!(reply.ok, "{rid}: {reply:?}");
    }
    mallory
        .send(ClientFrame::Conversations {
            rid: 7.into(),
            before: None,
            limit: None,
        })
        .await;
    assert_eq!(mallory.reply().await.conversations, Some(vec![]));
    let counts = node.get("/v1/users/victim/counts").await;
    assert_eq!(counts["unread_total"], 1, "{counts}");
    let history = node.get("/v1/users/victim/messages").await;
    assert_eq!(history["messages"][0]["state"], "unseen", "{history}");
    assert_eq!(
        node.get("/v1/users/victim/topics").await["topics"],
        json!([])
    );
    assert_eq!(
        node.get("/v1/users/victim/blocks").await["blocked"],
        json!([])
    );
    assert_eq!(
        node.get("/v1/users/mallory/blocks").await["blocked"],
        json!(["victim"])
    );
    // Her block stops only the victim's messages to her.
    assert!(!victim.send_private("v", "mallory", "hi").await.ok);
}

/// Past `limits.requests_per_sec` requests get `rate_limited` (429 over
/// HTTP); a connection that keeps going is closed with 4029; acks are not
/// counted; another user is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_rate_limit_are_refused_then_the_connection_closed() {
    use herald_protocol::{ClientFrame, ErrorCode, ServerFrame};
    let mut settings = common::settings();
    // 1 a second (a budget of 2): a slow test machine cannot refill it.
    settings.limits.requests_per_sec = 1;
    settings.limits.close_after_refusals = 3;
    let node = TestNode::with(settings).await;
    let mut flood = node.connect("flood").await;
    let mut calm = node.connect("calm").await;
    for i in 0..5 {
        flood.send(ClientFrame::Ping { rid: i.into() }).await;
    }
    let mut codes = Vec::new();
    for _ in 0..4 {
        match flood.next().await {
            ServerFrame::Reply(r) => codes.push(r.error.map(|e| e.code)),
            other => panic!("{other:?}"),
        }
    }
    // A budget of twice the rate, then refusals; the third in a row closes.
    assert_eq!(codes[..2], [None; 2]);
    assert_eq!(codes[2..], [Some(ErrorCode::RateLimited); 2]);
    assert_eq!(flood.closed().await, Some(4029.into()));
    calm.send(ClientFrame::Ping { rid: 1.into() }).await;
    assert!(calm.reply().await.ok);
    let resp = reqwest::Client::new()
        .post(node.http(&format!("/v1/me/requests?token={}", node.token("flood"))))
        .json(&json!({"type": "ping", "rid": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
}

/// `limits.max_connections_per_user` (429) and `limits.max_connections`
/// (503) at the handshake, for WebSocket and SSE alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_are_enforced_at_the_handshake() {
    let mut settings = common::settings();
    settings.limits.max_connections_per_user = 2;
    settings.limits.max_connections = 3;
    let node = TestNode::with(settings).await;
    let _a1 = node.connect("a").await;
    let _a2 = node.connect("a").await;
    let status = |url: String| async move { reqwest::get(url).await.unwrap().status().as_u16() };
    assert_eq!(
        status(node.http(&format!("/ws?token={}", node.token("a")))).await,
        429
    );
    assert_eq!(
        status(node.http(&format!("/sse?token={}", node.token("a")))).await,
        429
    );
    let _b = node.connect("b").await;
    assert_eq!(
        status(node.http(&format!("/ws?token={}", node.token("c")))).await,
        503
    );
    assert_eq!(
        status(node.http(&format!("/sse?token={}", node.token("c")))).await,
        503
    );
}

/// Hostile frames each get a clear error (or a documented close) and the
/// node stays healthy for everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_get_errors_and_the_node_stays_healthy() {
    use futures_util::SinkExt;
    use herald_protocol::{ClientFrame, Codec, ErrorCode};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let node = TestNode::start().await;
    let mut c = node.connect("hostile").await;
    let nested = format!(
        r#"{{"type":"send","rid":"deep","to":"x","body":"b","data":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: [(&str, ErrorCode); 4] = [
        (nested.as_str(), ErrorCode::BadRequest),
        (
            r#"{"type":"send","rid":1,"to":5,"body":"x"}"#,
            ErrorCode::BadRequest,
        ),
        (
            r#"{"type":"mark","rid":2,"state":"read","ids":"all"}"#,
            ErrorCode::BadRequest,
        ),
        (
            r#"{"type":"send","rid":3,"to":"x","body":"x","data":[1]}"#,
            ErrorCode::InvalidField,
        ),
    ];
    for (raw, code) in cases {
        c.send_raw(raw.as_bytes().to_vec()).await;
        let reply = c.reply().await;
        assert_eq!(
            (reply.ok, reply.error.map(|e| e.code)),
            (false, Some(code)),
            "{raw:.80}"
        );
    }
    // Garbage on a MessagePack connection.
    let mut packed =
        common::Client::connect_to(node.addr, &node.token("packed"), Codec::MsgPack, None).await;
    packed.send_raw(vec![0xc1, 0xff, 0x00]).await;
    assert_eq!(
        packed.reply().await.error.map(|e| e.code),
        Some(ErrorCode::BadRequest)
    );
    // A text frame that is not UTF-8 closes that connection with 1007.
    let mut bad = node.connect("hostile").await;
    let raw = unsafe_text(&[0x7b, 0xff, 0xfe, 0x7d]);
    bad.ws.send(raw).await.unwrap();
    assert_eq!(bad.closed().await, Some(1007.into()));
    // Everyone else carries on.
    c.send(ClientFrame::Ping {
        rid: "alive".into(),
    })
    .await;
    assert!(c.reply().await.ok);
    node.send_to(&["hostile"], "still here").await;
    assert_eq!(c.message().await.body, "still here");
    // The API: too many recipients in one call.
    let users: Vec<String> = (0..1_001).map(|i| format!("u{i}")).collect();
    let (status, body) = node
        .post(json!({"to": {"users": users}, "category": "system", "body": "x"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_field")),
        "{body}"
    );

    /// A text frame carrying bytes that are not UTF-8 (tungstenite checks
    /// text only when reading, so a client can send it).
    fn unsafe_text(bytes: &[u8]) -> WsMessage {
        WsMessage::Frame(
            tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
                bytes.to_vec(),
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
                ),
                true,
            ),
        )
    }
}

/// A field the contract does not know is refused wherever a message comes
/// in (a send, a batch item, a publish, the WebSocket `send` and the SSE
/// requests route), the error naming the field, and nothing is stored: a
/// client written for scheduled sends or collapse must not mistake a field
/// this version drops for success.
#[tokio::test]
async fn unknown_fields_are_refused_naming_the_field() {
    use herald_protocol::ErrorCode;
    let node = TestNode::start().await;
    let send = json!({"to": {"users": ["uma"]}, "category": "remind", "body": "b", "send_at": 1});
    let cases = [
        ("/v1/messages", send.clone(), "send_at"),
        (
            "/v1/messages/batch",
            json!({"messages": [{"to": {"users": ["uma"]}, "category": "remind", "body": "b"}, send]}),
            "messages[1]",
        ),
        (
            "/v1/topics/t:1/messages",
            json!({"body": "b", "priority": "high"}),
            "priority",
        ),
    ];
    for (path, body, named) in cases {
        let (status, json) = node.post_to(path, body).await;
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{path}: {json}");
        assert!(message.contains(named), "{path}: {message}");
        assert!(message.contains("unknown field"), "{path}: {message}");
    }
    assert_eq!(node.get("/v1/users/uma/inbox").await["last_seq"], 0);

    let mut ws = node.connect("uma").await;
    ws.send_raw(br#"{"type":"send","rid":1,"to":"vic","body":"x","priority":"high"}"#.to_vec())
        .await;
    let reply = ws.reply().await;
    let error = reply.error.expect("an error reply");
    assert_eq!(error.code, ErrorCode::BadRequest);
    assert!(error.message.contains("priority"), "{}", error.message);

    let resp = reqwest::Client::new()
        .post(node.http(&format!("/v1/me/requests?token={}", node.token("uma"))))
        .json(&json!({"type": "send", "rid": 2, "to": "vic", "body": "x", "critical": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let json: serde_json::Value = resp.json().await.unwrap();
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("critical")),
        "{json}"
    );
    assert_eq!(node.get("/v1/users/vic/inbox").await["last_seq"], 0);
}
