use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;

use crate::backend::ConnInfo;
use crate::backend::Presence;
use crate::error::Result;

/// Presence for one process. Shared by every hub of that process.
#[derive(Default)]
pub struct MemoryPresence {
    users: Mutex<HashMap<String, HashMap<Uuid, ConnInfo>>>,
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn add(&self, conn: &ConnInfo) -> Result<()> {
        self.users
            .lock()
            .unwrap()
            .entry(conn.user_id.clone())
            .or_default()
            .insert(conn.conn_id, conn.clone());
        Ok(())
    }

    async fn remove(&self, conn: &ConnInfo) -> Result<()> {
        let mut users = self.users.lock().unwrap();
        if let Some(conns) = users.get_mut(&conn.user_id) {
            conns.remove(&conn.conn_id);
            if conns.is_empty() {
                users.remove(&conn.user_id);
            }
        }
        Ok(())
    }

    async fn connections(&self, user: &str) -> Result<Vec<ConnInfo>> {
        let users = self.users.lock().unwrap();
        let mut conns: Vec<ConnInfo> = users
            .get(user)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        conns.sort_by_key(|c| c.connected_at);
        Ok(conns)
    }

    async fn online_users(&self) -> Result<u64> {
        Ok(self.users.lock().unwrap().len() as u64)
    }

    /// The nodes that hold a connection here (one process: usually one).
    async fn node_connections(&self) -> Result<BTreeMap<String, u64>> {
        let mut counts = BTreeMap::new();
        for conns in self.users.lock().unwrap().values() {
            for conn in conns.values() {
                *counts.entry(conn.node_id.clone()).or_default() += 1;
            }
        }
        Ok(counts)
    }

    async fn heartbeat(&self) -> Result<bool> {
        Ok(false)
    }
}
