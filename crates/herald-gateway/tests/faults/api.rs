//! What the nodes' API says during and after a fault: whether a node
//! accepts messages, what the store holds, who is online, a metric.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herald_harness::Accepted;
use uuid::Uuid;

use crate::common::{Api, API_KEY};

/// The server API of the node at an address.
impl Api for SocketAddr {
    fn addr(&self) -> SocketAddr {
        *self
    }
}

/// POSTs one message to the user `probe` (no device) through `addr`: its
/// status, 0 without an HTTP answer.
async fn probe(addr: SocketAddr) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{addr}/v1/messages"))
        .bearer_auth(API_KEY)
        .timeout(Duration::from_secs(10))
        .json(
            &serde_json::json!({"to": {"users": ["probe"]}, "category": "system", "body": "probe"}),
        )
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Waits until every node in `addrs` answers a send with 202; returns the
/// time since `since`.
pub async fn healed(addrs: &[SocketAddr], since: Instant, within: Duration) -> Duration {
    for addr in addrs {
        for attempt in 0.. {
            if probe(*addr).await == 202 {
                break;
            }
            assert!(attempt < 10_000, "node {addr}: 10,000 probes refused");
            assert!(
                since.elapsed() < within,
                "node {addr} does not accept messages {within:?} after the fault ended \
                 ({attempt} probes)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    since.elapsed()
}

/// The user's inbox as the store has it: (seq, id), through the API.
pub async fn store_inbox(addr: SocketAddr, user: &str) -> Vec<(u64, Uuid)> {
    let mut all = Vec::new();
    let mut after = 0;
    for _ in 0..100 {
        let page = format!("/v1/users/{user}/inbox?after={after}&limit=1000");
        let json = addr.get(&page).await;
        let page = json["messages"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        for m in page {
            let seq = m["seq"].as_u64().unwrap();
            all.push((seq, m["id"].as_str().unwrap().parse().unwrap()));
            after = seq;
        }
    }
    all
}

/// Every user's store inbox holds seqs 1..=last without a hole, and every
/// accepted message under its seq.
pub async fn assert_store_whole(addr: SocketAddr, accepted: &[Accepted<String>]) {
    let mut users: Vec<&str> = accepted.iter().map(|a| a.user.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    for user in users {
        let inbox = store_inbox(addr, user).await;
        let seqs: Vec<u64> = inbox.iter().map(|(s, _)| *s).collect();
        let want: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, want, "{user}'s inbox has a seq gap");
        let by_seq: HashMap<u64, Uuid> = inbox.into_iter().collect();
        for a in accepted.iter().filter(|a| a.user == user) {
            assert_eq!(
                by_seq.get(&a.seq),
                Some(&a.id),
                "{user}: accepted seq {} not in the store",
                a.seq
            );
        }
    }
}

/// Whether `user` has a connection in presence (asked through `addr`).
pub async fn online(addr: SocketAddr, user: &str) -> bool {
    addr.get(&format!("/v1/users/{user}/presence")).await["online"] == true
}

/// Waits until presence says `want` (online or not) for every user in
/// `users`; returns how long that took.
pub async fn wait_presence(
    addr: SocketAddr,
    users: &[String],
    want: bool,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    for user in users {
        for polls in 0.. {
            if online(addr, user).await == want {
                break;
            }
            assert!(
                started.elapsed() < within && polls < 10_000,
                "{user} online should be {want} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    started.elapsed()
}

/// A node's Prometheus sample `name` (first series), if present.
pub async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name)?
            .split_whitespace()
            .last()?
            .parse()
            .ok()
    })
}
