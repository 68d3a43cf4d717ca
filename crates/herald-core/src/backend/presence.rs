//! Presence: which node holds which user's connections.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;

/// Cluster-wide view of who is connected where.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    async fn add(&self, conn: &ConnInfo) -> Result<()>;
    async fn remove(&self, conn: &ConnInfo) -> Result<()>;
    /// The live connections of `user` on every node.
    async fn connections(&self, user: &str) -> Result<Vec<ConnInfo>>;
    /// How many distinct users have at least one live connection.
    /// Cluster backends first remove the entries of nodes that stopped
    /// heartbeating, so the count is exact; every node's heartbeat loop
    /// calls it, which is what reaps dead nodes.
    async fn online_users(&self) -> Result<u64>;
    /// How many connections each live node holds, by node id: what
    /// rebalancing compares. Cluster backends list every node that beats,
    /// one without connections with 0 (a node just added), and leave out
    /// nodes whose beats lapsed. A read only; it reaps nothing.
    async fn node_connections(&self) -> Result<BTreeMap<String, u64>>;
    /// Tells the cluster this node is alive. Nodes that stop calling it drop
    /// out of presence: the others reap their entries (no-op for
    /// single-node backends). It does no reaping itself, so it stays quick.
    ///
    /// Returns `true` once after this node was given up for dead (its beats
    /// lapsed: a long pause, or a lost link to the backend) and the cluster
    /// is done removing its entries: the caller must then add its live
    /// connections again, or they stay invisible to presence.
    async fn heartbeat(&self) -> Result<bool>;

    /// Called once from the thread that calls [`Presence::heartbeat`] from
    /// then on (the gateway beats on a thread and runtime of its own, so a
    /// node whose main runtime is starved of CPU still beats): a backend
    /// that talks over the network opens a connection of its own there, so
    /// a beat waits neither on the busy runtime nor behind the shared
    /// connections' queue. Single-process backends have nothing to do.
    async fn dedicate_heartbeat(&self) -> Result<()> {
        Ok(())
    }
}

/// One live WebSocket connection, as presence records it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    pub conn_id: Uuid,
    pub user_id: String,
    pub node_id: String,
    pub device: String,
    #[serde(with = "time::serde::rfc3339")]
    pub connected_at: OffsetDateTime,
}
