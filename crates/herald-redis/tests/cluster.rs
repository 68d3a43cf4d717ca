//! The behavioural suite against a 3-master Redis Cluster (sharded pub/sub).

mod common;

use std::sync::OnceLock;

use herald_testing::RedisCluster;

fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start(3))
}

async fn backend() -> common::TestBackend {
    common::TestBackend::new(cluster().url())
}

herald_core::backend_suite!(backend());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_job_is_taken_over_after_its_worker_dies() {
    common::fanout_job_is_taken_over_after_its_worker_dies(&backend().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_are_forgotten_and_holders_kept() {
    common::idle_workers_are_forgotten_and_holders_kept(&backend().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_nodes_consumer_goes_once_its_job_is_taken_over() {
    common::dead_nodes_consumer_goes_once_its_job_is_taken_over(&backend().await).await;
}

/// Group commit: concurrent appends through one backend share script calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_gap_free_and_published_in_order() {
    common::concurrent_appends_are_gap_free_and_published_in_order(&backend().await).await;
}

/// Every primary gets the library at connect. A primary that lost it (here
/// all of them, `FUNCTION FLUSH`; a node added to the Cluster is the same)
/// gets it back from the first call it refuses, and the call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primary_holds_the_library_and_gets_it_back_when_lost() {
    use herald_core::testkit::draft;
    use herald_core::{Retention, StreamKey};

    let holds = |node: &herald_testing::RedisServer| {
        let listed = node.command(&format!(
            "FUNCTION LIST LIBRARYNAME {}",
            herald_redis::library_name()
        ));
        listed.as_deref() == Some("*1")
    };
    let backend = backend().await;
    let store = backend.connect("store", Retention::default()).await.store();
    assert!(cluster().nodes().iter().all(holds), "not loaded at connect");
    for node in cluster().nodes() {
        node.command("FUNCTION FLUSH").unwrap();
    }
    // Users in many slots, so every primary is called.
    for i in 0..30 {
        let key = StreamKey::inbox(format!("lib-{i}"));
        assert_eq!(store.append(&key, draft("x")).await.unwrap().seq, 1);
    }
    assert!(cluster().nodes().iter().all(holds), "not loaded again");
}
