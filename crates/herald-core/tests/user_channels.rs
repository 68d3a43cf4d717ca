//! Subscription lifetime: subscribe on the first local connection, linger
//! after the last, batch what piles up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald_core::memory::{MemoryBroker, MemoryBus};
use herald_core::testkit::RecordingSink;
use herald_core::{Broker, Result, UserChannels};

/// The memory broker, with a log of the calls the tracker makes.
struct Logged {
    inner: MemoryBroker,
    calls: Mutex<Vec<(&'static str, Vec<String>)>>,
}

#[async_trait]
impl Broker for Logged {
    async fn subscribe(&self, users: &[String]) -> Result<()> {
        // A slow round trip, so concurrent acquires pile up behind it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.calls.lock().unwrap().push(("sub", sorted(users)));
        self.inner.subscribe(users).await
    }
    async fn unsubscribe(&self, users: &[String]) -> Result<()> {
        self.calls.lock().unwrap().push(("unsub", sorted(users)));
        self.inner.unsubscribe(users).await
    }
}

fn sorted(users: &[String]) -> Vec<String> {
    let mut v = users.to_vec();
    v.sort();
    v
}

fn logged() -> Arc<Logged> {
    let (sink, _) = RecordingSink::new();
    Arc::new(Logged {
        inner: MemoryBroker::new(MemoryBus::new(), sink),
        calls: Mutex::default(),
    })
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_reconnect_within_the_linger_costs_no_broker_call() {
    let broker = logged();
    let subs = UserChannels::new(broker.clone(), Duration::from_millis(300));
    subs.acquire("alice").await.unwrap();
    subs.release("alice");
    subs.acquire("alice").await.unwrap();
    subs.release("alice");
    assert_eq!(broker.calls.lock().unwrap().len(), 1, "one subscribe only");
    wait_for("the lingering unsubscribe", || {
        broker.calls.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(
        *broker.calls.lock().unwrap(),
        vec![
            ("sub", vec!["alice".to_owned()]),
            ("unsub", vec!["alice".to_owned()])
        ]
    );
    assert_eq!(subs.subscribed_count(), 0);
}

#[tokio::test]
async fn a_user_with_connections_left_stays_subscribed() {
    let broker = logged();
    let subs = UserChannels::new(broker.clone(), Duration::from_millis(20));
    subs.acquire("bob").await.unwrap();
    subs.acquire("bob").await.unwrap();
    subs.release("bob");
    tokio::time::sleep(Duration::from_millis(100)).await;
    subs.sweep().await;
    assert_eq!(subs.subscribed_count(), 1);
    assert_eq!(broker.calls.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_connections_share_subscribe_calls() {
    let broker = logged();
    let subs = UserChannels::new(broker.clone(), Duration::from_secs(60));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let subs = subs.clone();
        tasks.push(tokio::spawn(
            async move { subs.acquire(&format!("u{i}")).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let calls = broker.calls.lock().unwrap();
    let users: usize = calls.iter().map(|(_, u)| u.len()).sum();
    assert_eq!(users, 50, "every user subscribed exactly once");
    assert!(
        calls.len() < 50,
        "subscribes were batched: {} calls",
        calls.len()
    );
    assert_eq!(subs.subscribed_count(), 50);
}
