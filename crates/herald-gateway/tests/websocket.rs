//! The WebSocket protocol against a real node on an ephemeral port.

mod common;

use std::time::Duration;

use common::{eventually, Api, Client, TestNode, WAIT};
use herald_protocol::{Category, ClientFrame, Codec, ErrorCode, Rid, ServerFrame, Stream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Error as WsError;

async fn handshake_status(request: impl IntoClientRequest + Unpin) -> u16 {
    match tokio_tungstenite::connect_async(request).await {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Ok(_) => 101,
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn handshake_without_valid_credentials_is_refused() {
    let node = TestNode::start().await;
    assert_eq!(handshake_status(node.ws_url("")).await, 401);
    assert_eq!(handshake_status(node.ws_url("token=nonsense")).await, 401);
    let forged = TestNode::with({
        let mut s = common::settings();
        s.auth.jwt_secret = "another-secret".into();
        s
    })
    .await
    .token("alice");
    assert_eq!(
        handshake_status(node.ws_url(&format!("token={forged}"))).await,
        401
    );
    let good = node.token("alice");
    assert_eq!(
        handshake_status(node.ws_url(&format!("token={good}"))).await,
        101
    );
    // The same token in the Authorization header.
    let mut req = node.ws_url("").into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {good}")).unwrap(),
    );
    assert_eq!(handshake_status(req).await, 101);
}

#[tokio::test]
async fn cookie_auth_needs_an_allowed_origin() {
    let node = TestNode::with({
        let mut s = common::settings();
        s.auth.allowed_origins = vec!["https://app.example".into()];
        s
    })
    .await;
    let token = node.token("carol");
    let request = |origin: &'static str| {
        let mut req = node.ws_url("").into_client_request().unwrap();
        req.headers_mut().insert(
            "cookie",
            HeaderValue::from_str(&format!("herald_token={token}")).unwrap(),
        );
        req.headers_mut()
            .insert("origin", HeaderValue::from_static(origin));
        req
    };
    assert_eq!(handshake_status(request("https://evil.example")).await, 403);
    assert_eq!(handshake_status(request("https://app.example")).await, 101);
}

#[tokio::test]
async fn unknown_subprotocol_is_refused() {
    let node = TestNode::start().await;
    let mut req = node
        .ws_url(&format!("token={}", node.token("a")))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("v9"));
    assert_eq!(handshake_status(req).await, 400);
}

#[tokio::test]
async fn welcome_names_the_connection() {
    let node = TestNode::start().await;
    node.send_to(&["alice"], "before").await;
    let client = node.connect("alice").await;
    let w = &client.welcome;
    assert_eq!(w.user_id, "alice");
    assert_eq!(w.node_id, node.node.id);
    assert_eq!(w.heartbeat_ms, node.node.settings.ws.heartbeat_ms);
    assert_eq!((w.last_seq, w.last_all_seq), (1, 0));
    assert!(!w.conn_id.is_nil());
}

#[tokio::test]
async fn every_tab_of_a_user_gets_each_message_once() {
    let node = TestNode::start().await;
    let mut tab1 = node.connect("alice").await;
    let mut tab2 = node.connect("alice").await;
    node.send_to(&["alice"], "one").await;
    node.send_to(&["alice"], "two").await;
    for tab in [&mut tab1, &mut tab2] {
        let (m1, m2) = (tab.message().await, tab.message().await);
        assert_eq!((m1.seq, m1.body.as_str()), (1, "one"));
        assert_eq!((m2.seq, m2.body.as_str()), (2, "two"));
        tab.quiet(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn broadcast_reaches_everyone_once() {
    let node = TestNode::start().await;
    let mut clients = Vec::new();
    for user in ["a", "b", "c"] {
        clients.push(node.connect(user).await);
    }
    let (status, json) = node
        .post(serde_json::json!({"to": {"all": true}, "category": "announcement", "title": "t", "body": "hello all"}))
        .await;
    assert_eq!(status, 202, "{json}");
    assert_eq!(json["stored"][0]["stream"], "all");
    for c in &mut clients {
        let m = c.message().await;
        assert_eq!(
            (m.stream, m.seq, m.category),
            (Stream::All, 1, Category::ANNOUNCEMENT)
        );
        assert_eq!(m.title.as_deref(), Some("t"));
        c.quiet(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn offline_user_gets_the_backlog_in_order_on_connect() {
    let node = TestNode::start().await;
    for i in 1..=5 {
        node.send_to(&["bob"], &format!("m{i}")).await;
    }
    let mut bob = node.connect("bob").await;
    assert_eq!(bob.welcome.last_seq, 5);
    for i in 1..=5 {
        let m = bob.message().await;
        assert_eq!((m.seq, m.body), (i, format!("m{i}")));
    }
    bob.quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn acked_messages_are_not_pushed_again_and_sync_resumes() {
    let node = TestNode::start().await;
    for i in 1..=3 {
        node.send_to(&["dave"], &format!("m{i}")).await;
    }
    let mut phone = Client::connect(&node, "dave", Codec::Json, Some("phone")).await;
    for _ in 0..3 {
        phone.message().await;
    }
    phone
        .send(ClientFrame::Ack {
            seq: 2,
            stream: Stream::Inbox,
        })
        .await;
    phone.send(ClientFrame::Ping { rid: Rid::Int(1) }).await;
    assert!(
        phone.reply().await.ok,
        "ping answered after the ack was handled"
    );
    drop(phone);
    for i in 4..=6 {
        node.send_to(&["dave"], &format!("m{i}")).await;
    }
    // The phone resumes after its cursor: 3..6, no gap, no duplicate.
    let mut phone = Client::connect(&node, "dave", Codec::Json, Some("phone")).await;
    for seq in 3..=6 {
        assert_eq!(phone.message().await.seq, seq);
    }
    // An explicit sync replays from the client's own point.
    phone
        .send(ClientFrame::Sync {
            rid: "s".into(),
            since: 4,
            since_all: None,
            since_id: None,
            since_all_id: None,
        })
        .await;
    assert_eq!(phone.message().await.seq, 5);
    assert_eq!(phone.message().await.seq, 6);
    let reply = phone.reply().await;
    assert_eq!(
        (reply.rid, reply.ok, reply.last_seq),
        (Some("s".into()), true, Some(6))
    );
    // Another device of the same user has its own cursor.
    let mut laptop = Client::connect(&node, "dave", Codec::Json, Some("laptop")).await;
    assert_eq!(laptop.message().await.seq, 1);
}

/// A client whose position the store no longer has (a Redis failover lost
/// the newest messages, docs/faults.md) is told `reset`, back to its
/// device's acknowledged cursor, and gets what follows it again: a `sync`
/// past the store's end, or from a seq where the store holds another
/// message than the client's.
#[tokio::test]
async fn a_sync_from_a_position_the_store_does_not_hold_resets_the_client() {
    let node = TestNode::start().await;
    let mut ids = Vec::new();
    for i in 1..=3 {
        ids.push(node.send_to(&["gina"], &format!("m{i}")).await);
    }
    let mut c = Client::connect(&node, "gina", Codec::Json, Some("phone")).await;
    for seq in 1..=3 {
        assert_eq!(c.message().await.seq, seq);
    }
    c.send(ClientFrame::Ack {
        seq: 1,
        stream: Stream::Inbox,
    })
    .await;
    let sync = |since, since_id| ClientFrame::Sync {
        rid: "s".into(),
        since,
        since_all: None,
        since_id,
        since_all_id: None,
    };
    // Past the end (the client had seqs up to 9).
    c.send(sync(9, None)).await;
    assert_eq!(
        c.next().await,
        ServerFrame::Reset {
            stream: Stream::Inbox,
            seq: 1
        }
    );
    for seq in 2..=3 {
        assert_eq!(c.message().await.seq, seq);
    }
    let reply = c.reply().await;
    assert_eq!((reply.ok, reply.last_seq), (true, Some(3)));
    // At 2 the client has another message than the store.
    c.send(sync(2, Some(uuid::Uuid::new_v4()))).await;
    assert!(matches!(c.next().await, ServerFrame::Reset { seq: 1, .. }));
    assert_eq!(c.message().await.seq, 2);
    assert_eq!(c.message().await.seq, 3);
    assert!(c.reply().await.ok);
    // The same message at 2: an ordinary sync.
    let at_2: uuid::Uuid = ids[1]["id"].as_str().unwrap().parse().unwrap();
    c.send(sync(2, Some(at_2))).await;
    assert_eq!(c.message().await.seq, 3);
    assert!(c.reply().await.ok);
    let metrics = reqwest::get(node.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("herald_stream_resets_total{") && l.ends_with(" 2")),
        "{metrics}"
    );
}

#[tokio::test]
async fn messages_during_connect_are_neither_lost_nor_doubled() {
    let node = std::sync::Arc::new(TestNode::start().await);
    const TOTAL: u64 = 300;
    let poster = {
        let node = node.clone();
        tokio::spawn(async move {
            for i in 1..=TOTAL {
                node.send_to(&["erin"], &i.to_string()).await;
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    // Connect again and again while messages flow; each connection must see
    // 1, 2, 3, … exactly, whatever it catches of the backlog and of live.
    for round in 0..6 {
        let mut c = node.connect("erin").await;
        let take = 20 + round * 40;
        for seq in 1..=take.min(TOTAL) {
            assert_eq!(c.message().await.seq, seq, "round {round}");
        }
    }
    poster.await.unwrap();
    let mut c = node.connect("erin").await;
    for seq in 1..=TOTAL {
        assert_eq!(c.message().await.seq, seq);
    }
    c.quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn msgpack_and_json_clients_get_the_same_messages() {
    let node = TestNode::start().await;
    let mut json = Client::connect(&node, "fay", Codec::Json, None).await;
    let mut pack = Client::connect(&node, "fay", Codec::MsgPack, None).await;
    node.post(serde_json::json!({"to": {"users": ["fay"]}, "category": "system", "body": "b", "data": {"n": [1, 2]}}))
        .await;
    let (a, b) = (json.message().await, pack.message().await);
    assert_eq!(a, b);
    assert_eq!(a.data, serde_json::json!({"n": [1, 2]}));
    pack.send(ClientFrame::Ping { rid: Rid::Int(9) }).await;
    assert_eq!(pack.reply().await.rid, Some(Rid::Int(9)));
}

#[tokio::test]
async fn private_messages_between_users() {
    let node = TestNode::start().await;
    let mut alice = node.connect("alice").await;
    let mut bob = node.connect("bob").await;
    let reply = alice.send_private("r1", "bob", "hi bob").await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.seq, Some(1));
    let m = bob.message().await;
    assert_eq!(Some(m.id), reply.id);
    assert_eq!(
        (m.category, m.from.as_deref()),
        (Category::MAILBOX, Some("alice"))
    );
    // A bad receiver is an error reply, not a dropped connection.
    let reply = alice.send_private("r2", "", "x").await;
    assert_eq!(
        (reply.ok, reply.error.unwrap().code),
        (false, ErrorCode::InvalidField)
    );
}

#[tokio::test]
async fn pipelined_sends_are_answered_and_delivered_in_order() {
    let node = TestNode::start().await;
    let mut alice = node.connect("alice").await;
    let mut bob = node.connect("bob").await;
    common::pipelined_sends_arrive_in_order(&mut alice, &mut bob, "bob", 300).await;
}

#[tokio::test]
async fn malformed_frames_get_error_replies_and_the_connection_stays() {
    let node = TestNode::start().await;
    let mut c = node.connect("gus").await;
    let cases: [(&str, Option<Rid>, ErrorCode); 5] = [
        ("not json", None, ErrorCode::BadRequest),
        ("[1,2]", None, ErrorCode::BadRequest),
        (
            r#"{"type":"fly","rid":"x"}"#,
            Some("x".into()),
            ErrorCode::UnknownType,
        ),
        (
            r#"{"type":"sync","rid":7}"#,
            Some(Rid::Int(7)),
            ErrorCode::BadRequest,
        ),
        (
            r#"{"type":"sync","rid":"s","since":-1}"#,
            Some("s".into()),
            ErrorCode::BadRequest,
        ),
    ];
    for (raw, rid, code) in cases {
        c.send_raw(raw.as_bytes().to_vec()).await;
        let reply = c.reply().await;
        assert_eq!(
            (reply.ok, reply.rid, reply.error.unwrap().code),
            (false, rid, code),
            "{raw}"
        );
    }
    // A binary frame on a JSON connection.
    use futures_util::SinkExt;
    c.ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        vec![1, 2].into(),
    ))
    .await
    .unwrap();
    assert!(!c.reply().await.ok);
    c.send(ClientFrame::Ping {
        rid: "alive".into(),
    })
    .await;
    assert!(c.reply().await.ok);
}

#[tokio::test]
async fn a_silent_client_is_closed_by_the_heartbeat() {
    let node = TestNode::with({
        let mut s = common::settings();
        s.ws.heartbeat_ms = 100;
        s
    })
    .await;
    let c = node.connect("hal").await;
    // Do not read (so no pong goes back) until the server gives up.
    eventually("the server to drop the connection", || async {
        node.node.hub.connection_count() == 0
    })
    .await;
    let mut c = c;
    assert_eq!(c.closed().await, Some(4000.into()));
}

#[tokio::test]
async fn an_answering_client_stays_connected() {
    let node = TestNode::with({
        let mut s = common::settings();
        s.ws.heartbeat_ms = 50;
        s
    })
    .await;
    let mut c = node.connect("ivy").await;
    // Reading answers the server's pings; 10 intervals pass without a close.
    c.quiet(Duration::from_millis(500)).await;
    node.send_to(&["ivy"], "still here").await;
    assert_eq!(c.message().await.body, "still here");
}

#[tokio::test]
async fn a_slow_consumer_is_closed_and_resumes_without_loss() {
    let node = TestNode::with({
        let mut s = common::settings();
        s.ws.outbound_queue = 4;
        s.ws.write_timeout_ms = 60_000;
        s
    })
    .await;
    let mut slow = node.connect("jay").await;
    // Large messages fill the socket buffers; the client does not read.
    let body = "x".repeat(60 * 1024);
    let mut sent = 0u64;
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.node.hub.connection_count() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never closed as slow"
        );
        node.send_to(&["jay"], &body).await;
        sent += 1;
    }
    // Drain what was written, then the close frame.
    loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut slow.ws))
            .await
            .unwrap()
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => {
                assert_eq!(f.unwrap().code, 4008.into());
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    // Reconnect: every message arrives, in order.
    let mut again = node.connect("jay").await;
    for seq in 1..=sent {
        assert_eq!(again.message().await.seq, seq);
    }
}

#[tokio::test]
async fn presence_follows_connections() {
    let node = TestNode::start().await;
    let get = |path: String| {
        let url = node.http(&path);
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(common::API_KEY)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let c1 = node.connect("kim").await;
    let _c2 = node.connect("kim").await;
    let p = get("/v1/users/kim/presence".into()).await;
    assert_eq!(p["online"], true);
    assert_eq!(p["connections"].as_array().unwrap().len(), 2);
    assert_eq!(get("/v1/presence".into()).await["online_users"], 1);
    drop(c1);
    eventually("presence to drop the closed tab", || async {
        get("/v1/users/kim/presence".into()).await["connections"]
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;
    assert_eq!(
        get("/v1/users/nobody/presence".into()).await["online"],
        false
    );
}

/// A drain: readiness off and new upgrades refused with 503 at once; each
/// connection gets its pending sends answered, a `reconnect` frame, and 1001.
#[tokio::test]
async fn a_drain_tells_clients_to_reconnect_then_closes_with_going_away() {
    let node = TestNode::with({
        let mut s = common::settings();
        s.drain.window_secs = 1;
        s.drain.max_reconnect_delay_ms = 500;
        s
    })
    .await;
    let mut c = node.connect("lea").await;
    c.counts_until(|_| true).await;
    let drain = tokio::spawn({
        let node = node.node.clone();
        async move { node.drain().await }
    });
    common::eventually("readiness turns false", || async {
        reqwest::get(node.http("/readyz")).await.unwrap().status() == 503
    })
    .await;
    let url = node.http(&format!("/ws?token={}", node.token("lea")));
    let refused = reqwest::get(url).await.unwrap();
    assert_eq!(refused.status(), 503);
    match c.next_any().await {
        ServerFrame::Reconnect { after_ms } => assert!(after_ms < 500),
        other => panic!("expected reconnect, got {other:?}"),
    }
    assert_eq!(c.closed().await, Some(1001.into()));
    tokio::time::timeout(WAIT, drain).await.unwrap().unwrap();
    assert_eq!(node.node.hub.connection_count(), 0);
}

#[tokio::test]
async fn rs256_tokens_verify_with_the_configured_public_key() {
    let node = TestNode::with({
        let mut s = common::settings();
        s.auth.jwt_public_key_pem = include_str!("fixtures/rs256-test-public.pem").into();
        s
    })
    .await;
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("fixtures/rs256-test-private.pem"))
            .unwrap();
    let claims = herald_gateway::auth::Claims {
        sub: "rita".into(),
        exp: 4_000_000_000,
        aud: None,
        iss: None,
    };
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let client = Client::connect_to(node.addr, &token, Codec::Json, None).await;
    assert_eq!(client.welcome.user_id, "rita");
    // An RS256 token signed by another key is refused.
    let mut forged = token.clone();
    forged.truncate(token.len() - 4);
    forged.push_str("AAAA");
    assert_eq!(
        handshake_status(node.ws_url(&format!("token={forged}"))).await,
        401
    );
}

#[tokio::test]
async fn client_pings_are_answered() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let node = TestNode::start().await;
    let mut c = node.connect("pat").await;
    c.counts_until(|_| true).await; // the counts that follow the welcome
    c.ws.send(WsMessage::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(WAIT, c.ws.next()).await.unwrap() {
            Some(Ok(WsMessage::Pong(data))) => {
                assert_eq!(&data[..], b"are you there");
                break;
            }
            Some(Ok(WsMessage::Ping(_))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_oversized_frame_closes_only_that_connection() {
    let node = TestNode::start().await;
    let mut big = node.connect("quin").await;
    let mut other = node.connect("quin").await;
    let huge = format!(
        r#"{{"type":"send","rid":1,"to":"x","body":"{}"}}"#,
        "y".repeat(100 * 1024)
    );
    big.send_raw(huge.into_bytes()).await;
    // RFC 6455's 1009, "message too big".
    assert_eq!(big.closed().await, Some(1009.into()));
    // The node and the user's other connection carry on.
    node.send_to(&["quin"], "still fine").await;
    assert_eq!(other.message().await.body, "still fine");
}
