//! The behavioural suite against one standalone redis-server.

mod common;

use std::sync::OnceLock;

use herald_redis::harness::RedisServer;

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

async fn backend() -> common::TestBackend {
    common::TestBackend::new(server().url())
}

herald_core::backend_suite!(backend());
