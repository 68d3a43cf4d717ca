//! Presence writes with a bound on how many are in flight at once.
//!
//! A node that tears down tens of thousands of connections at once (a
//! drain, a crash of its load balancer) would otherwise queue as many
//! `remove`s on the backend's few connections at the same instant, and
//! those queued behind the command timeout fail (2,760 of 60,000 did, in
//! the storm benchmark); the same for a node that registers every
//! connection again after its beats lapsed. Waiting here costs nothing:
//! the queue is fair, a call starts as soon as one ahead of it finished,
//! and no call times out for having waited.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use crate::backend::{ConnInfo, Presence};
use crate::error::Result;

/// A [`Presence`] whose `add`s and `remove`s run at most `in_flight` at a
/// time; reads and heartbeats pass straight through.
pub struct PacedPresence {
    inner: Arc<dyn Presence>,
    permits: Semaphore,
}

impl PacedPresence {
    pub fn new(inner: Arc<dyn Presence>, in_flight: usize) -> Self {
        PacedPresence {
            inner,
            permits: Semaphore::new(in_flight.max(1)),
        }
    }
}

#[async_trait]
impl Presence for PacedPresence {
    async fn add(&self, conn: &ConnInfo) -> Result<()> {
        let _permit = self.permits.acquire().await.expect("never closed");
        self.inner.add(conn).await
    }

    async fn remove(&self, conn: &ConnInfo) -> Result<()> {
        let _permit = self.permits.acquire().await.expect("never closed");
        self.inner.remove(conn).await
    }

    async fn connections(&self, user: &str) -> Result<Vec<ConnInfo>> {
        self.inner.connections(user).await
    }

    async fn online_users(&self) -> Result<u64> {
        self.inner.online_users().await
    }

    async fn node_connections(&self) -> Result<BTreeMap<String, u64>> {
        self.inner.node_connections().await
    }

    async fn heartbeat(&self) -> Result<bool> {
        self.inner.heartbeat().await
    }

    async fn dedicate_heartbeat(&self) -> Result<()> {
        self.inner.dedicate_heartbeat().await
    }
}
