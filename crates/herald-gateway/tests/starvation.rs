//! Presence that a starved node does not lose: its heartbeat beats on a
//! thread and a Redis connection of its own, so a node whose runtime is
//! busy for many heartbeat intervals stays alive in presence.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Api, TestNode};
use herald_gateway::settings::BackendKind;

/// The node's only worker thread is held for 2 s (10 heartbeat
/// intervals; the alive key lives 2): its alive key never expires
/// meanwhile, presence never gives it up, and its client is still online
/// afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_node_whose_runtime_is_starved_keeps_beating() {
    let redis = herald_testing::RedisServer::start();
    let mut settings = common::settings();
    settings.backend = BackendKind::Redis;
    settings.redis.url = redis.url();
    settings.node.id = "starved".into();
    settings.node.heartbeat_ms = 200;
    let node = TestNode::with(settings).await;
    let _ann = node.connect("ann").await;
    let alive = || redis.command("EXISTS herald:{n:starved}:alive");
    assert_eq!(alive().as_deref(), Some(":1"));
    let lapses = || async {
        let metrics = node.metrics().await;
        let line = metrics
            .lines()
            .find(|l| l.starts_with("herald_presence_lapses_total"))
            .map(str::to_owned);
        line.expect("lapses exported")
    };
    let lapses_before = lapses().await;
    // Starve the runtime: its one worker sleeps instead of polling tasks.
    let (started, is_started) = mpsc::channel();
    let hog = tokio::spawn(async move {
        started.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(2_000));
    });
    is_started.recv_timeout(common::WAIT).expect("the hog ran");
    // The test's own thread is not a worker: it watches with blocking
    // calls, a bounded number of times.
    let until = Instant::now() + Duration::from_millis(1_800);
    let mut looks = 0;
    while Instant::now() < until {
        assert_eq!(alive().as_deref(), Some(":1"), "lapsed while starved");
        looks += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(looks >= 10, "watched {looks} times only");
    hog.await.unwrap();
    assert_eq!(lapses().await, lapses_before, "presence gave the node up");
    assert_eq!(node.get("/v1/users/ann/presence").await["online"], true);
}
