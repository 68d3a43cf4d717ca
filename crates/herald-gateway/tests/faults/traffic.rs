//! A fault test's steady traffic: `POST /v1/messages` one at a time at a
//! bounded pace, through herald-harness's API sender, which books every
//! 202's id and seqs and logs every request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald_harness::{Accepted, ApiSender, Request};
use tokio::sync::watch;

use crate::common::API_KEY;
use crate::waits::wait_for;

/// What the traffic sent, once it stopped.
pub struct Sent {
    /// Every accepted message, one per receiver, in acceptance order.
    pub accepted: Vec<Accepted<String>>,
    /// Every request, in the order the answers came.
    pub requests: Vec<Request>,
}

impl Sent {
    /// Messages accepted (202).
    pub fn accepted_count(&self) -> usize {
        self.requests.iter().filter(|r| r.status == 202).count()
    }
}

pub struct Traffic {
    sender: Arc<ApiSender<String>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    /// Sends up to `max` messages, one every `every` (at most: a slow answer
    /// slows the sender), through the nodes in turn; messages go to the
    /// users in turn, every fifth one to two users. A node that refuses the
    /// connection is not used again; with none left the traffic ends.
    pub fn start(addrs: &[SocketAddr], users: &[String], every: Duration, max: usize) -> Traffic {
        let bases = addrs.iter().map(|a| format!("http://{a}")).collect();
        let timeout = Duration::from_secs(10);
        let sender = ApiSender::new(bases, API_KEY.into(), 1, timeout, String::clone);
        let sender = Arc::new(sender.expect("an API sender"));
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn({
            let (sender, users, nodes) = (sender.clone(), users.to_vec(), addrs.len());
            async move {
                let mut down = vec![false; nodes];
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut node = 0;
                for i in 0..max {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    if down.iter().all(|d| *d) {
                        return;
                    }
                    node = (node + 1) % nodes;
                    while down[node] {
                        node = (node + 1) % nodes;
                    }
                    let (to, body) = message(&users, i);
                    if sender.send(node, to, body).await.unreachable {
                        down[node] = true;
                    }
                }
            }
        });
        Traffic { sender, stop, task }
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> usize {
        self.sender.accepted_count() as usize
    }

    /// Requests answered with a 5xx or not at all so far: what the API
    /// answers while Redis is away.
    pub fn refused(&self) -> usize {
        self.sender.stats().unknown as usize
    }

    /// Waits until `n` messages were accepted in all.
    pub async fn wait_accepted(&self, n: usize, within: Duration) {
        wait_for(&format!("{n} messages accepted"), within, || {
            self.accepted() >= n
        })
        .await;
    }

    pub async fn finish(self) -> Sent {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the sender stops")
            .expect("the sender did not panic");
        Sent {
            accepted: self.sender.accepted(),
            requests: self.sender.requests(),
        }
    }
}

/// Message `i`: to user `i` (in turn), every fifth one also to the next.
fn message(users: &[String], i: usize) -> (Vec<String>, serde_json::Value) {
    let mut to = vec![users[i % users.len()].clone()];
    if i % 5 == 4 && users.len() > 1 {
        to.push(users[(i + 1) % users.len()].clone());
    }
    let body = serde_json::json!({
        "to": {"users": to}, "category": "system", "body": format!("m{i}")
    });
    (to, body)
}
