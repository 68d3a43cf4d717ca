//! Test-only support for Herald: real redis-server processes for tests.
//!
//! The Redis tests (herald-redis's and the gateway's) run against real
//! servers rather than mocks: a standalone [`RedisServer`], a small
//! [`RedisCluster`] of masters, and a primary watched by a Sentinel
//! ([`RedisSentinel`]), each on free ports in a temporary directory and
//! killed on drop. A watchdog kills every process it started with SIGKILL
//! when the test binary exits, since servers kept in statics are never
//! dropped. It never touches a Redis it did not start (a shared one on
//! 6379 is left alone). A [`TcpProxy`] between a client and a server cuts
//! and restores the link, for fault tests. [`RespConn`] is the one RESP
//! client of the tests and the load tools. [`Secure`] starts either like a
//! managed Redis: TLS with a private CA ([`TestCerts`]) and an ACL user.
//!
//! Blocking (std only) on purpose: a server is usually kept in a
//! `OnceLock` shared by the tests of a binary, each of which runs its own
//! runtime.
//!
//! Use it as a `[dev-dependencies]` entry only: production crates (and the
//! `herald` binary) must not depend on it. It depends on no Herald crate.
//! Needs `redis-server` and `redis-cli` in `PATH` (`scripts/ensure-redis.sh`).

mod process;
mod redis_cluster;
mod redis_server;
mod resp;
mod sentinel;
mod tcp_proxy;
mod tls;
mod watchdog;

pub use redis_cluster::RedisCluster;
pub use redis_server::RedisServer;
pub use resp::{Resp, RespConn};
pub use sentinel::{RedisSentinel, SENTINEL_SERVICE};
pub use tcp_proxy::TcpProxy;
pub use tls::{Secure, TestCerts};
