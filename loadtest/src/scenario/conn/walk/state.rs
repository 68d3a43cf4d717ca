//! What a walk holds across its steps: its gateways, its workers and
//! what each was asked for, the watches and baselines. Its own file, so
//! `mod.rs` (which runs the steps) and `step.rs` (one step) both name it
//! without importing each other.

use std::sync::Arc;

use herald_harness::machine::MemInfo;
use tokio::time::Instant;

use super::gateway::Gateway;
use super::mem_watch::MemWatch;
use super::redis::RedisMemory;
use super::tcp_watch::TcpWatch;
use crate::scenario::conn::fleet::Fleet;
use crate::scenario::conn::{ConnArgs, StepArgs};

/// A worker of the walk: what it was asked for and holds (its process is
/// at the same index of [`Walk::fleet`]).
pub(super) struct Worker {
    pub(super) rss_base_kib: u64,
    pub(super) assigned: usize,
    pub(super) held: usize,
}

/// One walk, from its start to its last step.
pub(super) struct Walk<'a> {
    pub(super) args: &'a ConnArgs,
    pub(super) step_args: &'a StepArgs,
    pub(super) run: u32,
    pub(super) http: reqwest::Client,
    pub(super) gateways: Vec<Gateway>,
    pub(super) workers: Vec<Worker>,
    pub(super) fleet: Fleet,
    pub(super) watch: Arc<MemWatch>,
    /// Whether connects still get anywhere (`--stall-secs`).
    pub(super) tcp: Arc<TcpWatch>,
    pub(super) baseline: MemInfo,
    pub(super) redis_baseline: Option<RedisMemory>,
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    pub(super) floor_kib: u64,
    /// MemAvailable a broadcast took per held connection, last time.
    pub(super) bcast_per_conn_kib: f64,
}
