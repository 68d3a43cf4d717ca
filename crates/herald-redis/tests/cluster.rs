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

/// Group commit: concurrent appends through one backend share script calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_gap_free_and_published_in_order() {
    common::concurrent_appends_are_gap_free_and_published_in_order(&backend().await).await;
}
