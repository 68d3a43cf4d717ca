//! Several real `herald` processes on real Redis: cross-node delivery,
//! presence expiry after kill -9, and Redis restarts under traffic.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::process::ProcessNode;
use common::{eventually, Api, WAIT};
use herald_protocol::{Category, Stream};
use herald_testing::{RedisCluster, RedisServer, Resp, RespConn};

async fn redis() -> RedisServer {
    tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
}

async fn two_nodes(url: &str) -> (ProcessNode, ProcessNode) {
    let a = ProcessNode::start("node-a", url, &[]).await;
    let b = ProcessNode::start("node-b", url, &[]).await;
    (a, b)
}

/// Private messages, tabs on two nodes, broadcast and backlog across nodes.
async fn cross_node_delivery(url: &str) {
    let (a, b) = two_nodes(url).await;
    // Users on different nodes exchange private messages.
    let mut alice = a.connect("alice").await;
    let mut bob = b.connect("bob").await;
    let reply = alice.send_private("1", "bob", "hi bob").await;
    assert!(reply.ok, "{reply:?}");
    let m = bob.message().await;
    assert_eq!(
        (m.body.as_str(), m.from.as_deref(), m.category),
        ("hi bob", Some("alice"), Category::MAILBOX)
    );
    assert!(bob.send_private("2", "alice", "hi alice").await.ok);
    assert_eq!(alice.message().await.body, "hi alice");
    // Pipelined sends keep their order through Redis.
    let mut erin = b.connect("erin").await;
    common::pipelined_sends_arrive_in_order(&mut alice, &mut erin, "erin", 300).await;

    // One user with a tab on each node: each tab gets each message once.
    let mut tab_a = a.connect("carol").await;
    let mut tab_b = b.connect("carol").await;
    a.send_to(&["carol"], "one").await;
    b.send_to(&["carol"], "two").await;
    for tab in [&mut tab_a, &mut tab_b] {
        assert_eq!(tab.message().await.seq, 1);
        assert_eq!(tab.message().await.seq, 2);
        tab.quiet(Duration::from_millis(200)).await;
    }

    // A broadcast reaches every node.
    let (status, _) = a
        .post(serde_json::json!({"to": {"all": true}, "category": "announcement", "body": "all"}))
        .await;
    assert_eq!(status, 202);
    for c in [&mut alice, &mut bob, &mut tab_a, &mut tab_b] {
        let m = c.message().await;
        assert_eq!((m.stream, m.body.as_str()), (Stream::All, "all"));
    }

    // An offline user logs in on the other node and gets the backlog in order.
    for i in 1..=5 {
        a.send_to(&["dan"], &format!("m{i}")).await;
    }
    let mut dan = b.connect("dan").await;
    for i in 1..=5 {
        let m = dan.message().await;
        assert_eq!((m.seq, m.body), (i, format!("m{i}")));
    }
    // Presence is cluster-wide.
    let p = a.get("/v1/users/carol/presence").await;
    let mut nodes: Vec<String> = p["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["node_id"].as_str().unwrap().to_owned())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_delivery_on_standalone_redis() {
    let redis = redis().await;
    cross_node_delivery(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_delivery_on_redis_cluster() {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3))
        .await
        .unwrap();
    cross_node_delivery(&cluster.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_presence_by_itself() {
    let redis = redis().await;
    let (mut a, b) = two_nodes(&redis.url()).await;
    let _erin = a.connect("erin").await;
    let _fred = b.connect("fred").await;
    assert_eq!(b.get("/v1/presence").await["online_users"], 2);
    assert_eq!(b.get("/v1/users/erin/presence").await["online"], true);
    a.kill9();
    // Heartbeat 300 ms: gone within two intervals (plus polling slack).
    let started = tokio::time::Instant::now();
    eventually("erin to leave presence", || async {
        b.get("/v1/users/erin/presence").await["online"] == false
    })
    .await;
    eventually("the online count to drop", || async {
        b.get("/v1/presence").await["online_users"] == 1
    })
    .await;
    // Two heartbeat intervals (600 ms), plus this test's polling and the
    // heartbeat of the surviving node that reaps.
    let took = started.elapsed();
    eprintln!("presence expired after {took:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(b.get("/v1/users/fred/presence").await["online"], true);
}

/// A node paused past two heartbeats (SIGSTOP: a long GC-like stall) is
/// taken for dead and its users leave presence; once it runs again they
/// come back without reconnecting, and their connections still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_registers_its_connections_again() {
    let redis = redis().await;
    let (a, b) = two_nodes(&redis.url()).await;
    let mut erin = a.connect("erin").await;
    let online = |user: &'static str| {
        let b = &b;
        async move { b.get(&format!("/v1/users/{user}/presence")).await["online"] == true }
    };
    assert!(online("erin").await);
    a.signal("STOP");
    eventually("erin to leave presence", || async { !online("erin").await }).await;
    a.signal("CONT");
    eventually("erin to be back in presence", || online("erin")).await;
    b.send_to(&["erin"], "still here").await;
    assert_eq!(erin.message().await.body, "still here");
    assert_eq!(b.get("/v1/presence").await["online_users"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_under_traffic_loses_no_accepted_message() {
    // Redis with an fsync'd append-only file: what it acknowledged survives.
    let mut redis = tokio::task::spawn_blocking(|| {
        RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    })
    .await
    .unwrap();
    let fast_fail = [("HERALD__REDIS__COMMAND_TIMEOUT_MS", "300")];
    let a = ProcessNode::start("node-a", &redis.url(), &fast_fail).await;
    let b = ProcessNode::start("node-b", &redis.url(), &fast_fail).await;
    let mut gina = b.connect("gina").await;

    // Send through node A while Redis goes away and comes back.
    let sender = tokio::spawn({
        let url = a.http("/v1/messages");
        async move {
            let client = reqwest::Client::new();
            let mut accepted = BTreeMap::new();
            let mut refused = 0;
            for i in 0..400 {
                let resp = client
                    .post(&url)
                    .bearer_auth(common::API_KEY)
                    .timeout(WAIT)
                    .json(&serde_json::json!({"to": {"users": ["gina"]}, "category": "system", "body": i.to_string()}))
                    .send()
                    .await
                    .unwrap();
                match resp.status().as_u16() {
                    202 => {
                        let json: serde_json::Value = resp.json().await.unwrap();
                        accepted.insert(json["stored"][0]["seq"].as_u64().unwrap(), i.to_string());
                    }
                    503 => refused += 1,
                    other => panic!("unexpected status {other}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (accepted, refused)
        }
    });
    // Let some traffic through, then restart Redis.
    let first = gina.message().await;
    assert_eq!(first.seq, 1);
    let _redis = tokio::task::spawn_blocking(move || {
        redis.kill();
        std::thread::sleep(Duration::from_millis(1500));
        redis.restart();
        redis
    })
    .await
    .unwrap();
    let (accepted, refused) = sender.await.unwrap();
    assert!(!accepted.is_empty());
    assert!(refused > 0, "the outage should have refused some sends");
    eprintln!("accepted {}, refused with 503: {refused}", accepted.len());

    // The connection stayed up (or reconnects) and catches up: every accepted
    // message arrives, in seq order, none twice.
    let last = *accepted.keys().last().unwrap();
    let mut got = BTreeMap::new();
    got.insert(first.seq, first.body);
    let mut expected_next = 2;
    while expected_next <= last {
        let m = gina.message().await;
        assert_eq!(m.seq, expected_next, "gap or duplicate");
        got.insert(m.seq, m.body);
        expected_next += 1;
    }
    for (seq, body) in &accepted {
        assert_eq!(got.get(seq), Some(body), "accepted message {seq} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_apps_session_cookie_authenticates() {
    let redis = redis().await;
    // What express-session + connect-redis would have written.
    let session = r#"{"cookie":{},"user":{"id":"hank"}}"#;
    let set = RespConn::connect(("127.0.0.1", redis.port()))
        .and_then(|mut c| c.call(&["SET", "sess:abc123", session]))
        .unwrap();
    assert_eq!(set, Resp::Simple("OK".into()));
    let node = ProcessNode::start(
        "node-s",
        &redis.url(),
        &[
            ("HERALD__AUTH__SESSION__COOKIE", "connect.sid"),
            (
                "HERALD__AUTH__ALLOWED_ORIGINS",
                "https://app.example,https://admin.example",
            ),
        ],
    )
    .await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let request = |cookie: &str, origin: &str| {
        let mut req = format!("ws://{}/ws", node.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    let status = |r| async move {
        match tokio_tungstenite::connect_async(r).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        status(request("connect.sid=nope", "https://app.example")).await,
        401
    );
    assert_eq!(
        status(request(
            "connect.sid=s%3Aabc123.sig",
            "https://evil.example"
        ))
        .await,
        403
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request(
        "other=1; connect.sid=s%3Aabc123.sig",
        "https://admin.example",
    ))
    .await
    .unwrap();
    use futures_util::StreamExt;
    let welcome = ws.next().await.unwrap().unwrap().into_text().unwrap();
    let welcome: serde_json::Value = serde_json::from_str(&welcome).unwrap();
    assert_eq!(welcome["user_id"], "hank");
}
