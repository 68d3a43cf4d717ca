//! The behavioural suite against a 3-master Redis Cluster (sharded pub/sub).

mod common;

use std::sync::OnceLock;

use herald_redis::harness::RedisCluster;

fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start(3))
}

async fn backend() -> common::TestBackend {
    common::TestBackend::new(cluster().url())
}

herald_core::backend_suite!(backend());
