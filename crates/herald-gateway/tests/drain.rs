//! A graceful drain under traffic: two real `herald` processes on one real
//! Redis, 2,000 clients on node A; A gets SIGTERM while messages flow, its
//! clients reconnect (after the delay the `reconnect` frame gives) to node B,
//! and every message sent throughout reaches every client.
//!
//! "Exactly once" as a client sees it: each client acknowledges what it
//! gets (`ack`), so its next connection starts after its acknowledged
//! cursor; a message received but not yet acknowledged when A closed comes
//! again on B and is recognised by its seq (the protocol's resume rule).
//! The test asserts that no message is missing, that no connection ever
//! delivers one seq twice, and reports the redeliveries across the switch.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::process::{token, ProcessNode};
use common::{Api, Client};
use futures_util::StreamExt;
use herald_protocol::{ClientFrame, Codec, ServerFrame, Stream};
use herald_testing::RedisServer;
use tokio::sync::Mutex;

const USERS: usize = 2_000;
const UNICASTS: usize = 1_500;
const ANNOUNCEMENTS: usize = 6;

/// What one client received, per stream: every seq, and per connection.
#[derive(Default)]
struct Received {
    seqs: [BTreeSet<u64>; 2],
    redelivered: usize,
    switched: bool,
}

/// Reads one connection until it closes; returns the `reconnect` delay if
/// the server sent one. Panics on a seq repeated within the connection.
async fn read_until_closed(client: &mut Client, got: &Mutex<Received>) -> Option<u64> {
    let mut this_connection: [BTreeSet<u64>; 2] = Default::default();
    let mut reconnect = None;
    loop {
        let frame = match tokio::time::timeout(Duration::from_secs(60), client.ws.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(_) => return reconnect,
            Err(_) => panic!("client silent for 60 s"),
        };
        let bytes = match frame {
            tokio_tungstenite::tungstenite::Message::Text(t) => t.as_bytes().to_vec(),
            tokio_tungstenite::tungstenite::Message::Close(_) => return reconnect,
            _ => continue,
        };
        match client.codec.decode_server(&bytes).expect("a server frame") {
            ServerFrame::Message(m) => {
                let i = m.stream.index();
                assert!(
                    this_connection[i].insert(m.seq),
                    "seq {} of {:?} twice on one connection",
                    m.seq,
                    m.stream
                );
                let mut got = got.lock().await;
                if !got.seqs[i].insert(m.seq) {
                    got.redelivered += 1;
                }
                drop(got);
                client
                    .send(ClientFrame::Ack {
                        seq: m.seq,
                        stream: m.stream,
                    })
                    .await;
            }
            ServerFrame::Reconnect { after_ms } => reconnect = Some(after_ms),
            _ => {}
        }
    }
}

/// One user: on A until told to reconnect, then on B until the test ends.
async fn run_client(
    user: String,
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
    got: Arc<Mutex<Received>>,
) {
    let mut client = Client::connect_to(a, &token(&user), Codec::Json, None).await;
    let after_ms = read_until_closed(&mut client, &got)
        .await
        .expect("closed by A without a reconnect frame");
    tokio::time::sleep(Duration::from_millis(after_ms)).await;
    got.lock().await.switched = true;
    let mut client = Client::connect_to(b, &token(&user), Codec::Json, None).await;
    read_until_closed(&mut client, &got).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_moves_its_clients_and_loses_nothing() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let drain_env = [
        ("HERALD__DRAIN__WINDOW_SECS", "3"),
        ("HERALD__DRAIN__MAX_RECONNECT_DELAY_MS", "300"),
    ];
    let a = ProcessNode::start("drain-a", &redis.url(), &drain_env).await;
    let b = ProcessNode::start("drain-b", &redis.url(), &[]).await;
    let users: Vec<String> = (0..USERS).map(|i| format!("d{i}")).collect();
    let received: HashMap<String, Arc<Mutex<Received>>> =
        users.iter().map(|u| (u.clone(), Arc::default())).collect();
    let mut clients = Vec::new();
    for chunk in users.chunks(100) {
        let mut connecting = Vec::new();
        for user in chunk {
            let got = received[user].clone();
            let (user, a, b) = (user.clone(), a.addr, b.addr);
            connecting.push(tokio::spawn(run_client(user, a, b, got)));
        }
        clients.extend(connecting);
    }
    common::eventually("all clients on A", || async {
        a.get("/v1/presence").await["online_users"] == USERS as u64
    })
    .await;

    // Messages throughout: before, during and after the drain, through B.
    let mut expected: HashMap<&str, u64> = HashMap::new();
    let client = reqwest::Client::new();
    let mut announcements = 0;
    for i in 0..UNICASTS {
        if i == UNICASTS / 4 {
            a.signal("TERM");
        }
        let user = &users[(i * 7919) % USERS];
        let status = client
            .post(b.http("/v1/messages"))
            .bearer_auth(common::API_KEY)
            .json(&serde_json::json!({"to": {"users": [user]}, "category": "remind", "body": format!("{i}")}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 202);
        *expected.entry(user.as_str()).or_default() += 1;
        if i % (UNICASTS / ANNOUNCEMENTS) == 0 {
            let (status, _) = b
                .post(serde_json::json!({"to": {"all": true}, "category": "announcement", "body": format!("a{i}")}))
                .await;
            assert_eq!(status, 202);
            announcements += 1;
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }

    // Everyone moved to B and has everything.
    common::eventually("every client has every message", || async {
        for user in &users {
            let got = received[user].lock().await;
            let want_inbox = expected.get(user.as_str()).copied().unwrap_or(0);
            if !got.switched
                || got.seqs[Stream::Inbox.index()].len() as u64 != want_inbox
                || got.seqs[Stream::All.index()].len() != announcements
            {
                return false;
            }
        }
        true
    })
    .await;
    let mut redelivered = 0;
    for user in &users {
        let got = received[user].lock().await;
        let want_inbox = expected.get(user.as_str()).copied().unwrap_or(0);
        let inbox: Vec<u64> = got.seqs[Stream::Inbox.index()].iter().copied().collect();
        assert_eq!(inbox, (1..=want_inbox).collect::<Vec<_>>(), "{user}");
        redelivered += got.redelivered;
    }
    eprintln!("drain: {USERS} clients moved, {UNICASTS} unicasts + {announcements} announcements, {redelivered} redelivered across the switch (recognised by seq)");
    // Presence counts every moved client. Under load a node's beats may
    // lapse and its connections register again, so the count is waited for.
    common::eventually("every moved client counted online", || async {
        b.get("/v1/presence").await["online_users"] == USERS as u64
    })
    .await;
    for c in clients {
        c.abort();
    }
}
