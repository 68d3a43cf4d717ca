//! Presence: who is connected where, with node heartbeats.
//!
//! - `{u:<user>}:conns`: hash conn_id -> ConnInfo JSON (the source of truth
//!   for a user's connections), with a `reg` token fresh at every add, so
//!   the reaper deletes an entry only if it still holds what the reaper
//!   read (a node that came back may have added it again meanwhile).
//! - `{n:<node>}:conns`: set of `<conn_id>:<user>` a node holds, so that a
//!   dead node's entries can be found and removed.
//! - `{n:<node>}:alive`: exists while the node heartbeats (TTL = 2 beats).
//! - `{nodes}`: every node not yet reaped; `{online}`: users with at least
//!   one connection (SCARD = online users).
//!
//! These live in different slots, so no command or script spans them (Redis
//! Cluster); each step is ordered so that a crash between steps leaves
//! something the reaper or a lazy check repairs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::Client;
use fred::interfaces::{ClientLike, HashesInterface, KeysInterface, SetsInterface};
use fred::prelude::Expiration;
use fred::types::SetOptions;
use futures_util::future::BoxFuture;
use herald_core::{validate_user_id, ConnInfo, CoreError, Presence, Result};
use serde::Serialize;

use crate::script::Script;
use crate::{unavailable, Shared};

/// Called by a reaper at each [`ReapStage`] of a batch: what a test does
/// there to force a race with the node adding its entries again.
pub type ReapHook = Arc<dyn Fn(ReapStage) -> BoxFuture<'static, ()> + Send + Sync>;

/// Where in a batch a reaper calls its [`ReapHook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapStage {
    /// The batch's entries were read, none deleted yet.
    Read,
    /// The entries that still held what was read were deleted; their
    /// members are still in the node's set.
    Deleted,
}

/// What a connection's hash field holds.
#[derive(Serialize)]
struct Entry<'a> {
    #[serde(flatten)]
    conn: &'a ConnInfo,
    /// Fresh at every add: an entry added again (the same `ConnInfo`) is
    /// not the one a reaper read before.
    reg: u64,
}

/// Most entries of a dead node handled per round trip when reaping it.
const REAP_BATCH: i64 = 500;

/// Bounds of how long a reap lock lives without being renewed. The reaper
/// renews it every batch; a reaper that dies (its process stopped mid-reap)
/// must not keep the reaped node from registering again for long, because
/// that node waits for the lock to go before it does.
const REAP_LOCK_MIN: Duration = Duration::from_secs(2);
const REAP_LOCK_MAX: Duration = Duration::from_secs(30);

/// [`Presence`] on Redis hashes and sets.
pub struct RedisPresence {
    shared: Arc<Shared>,
    node: String,
    /// How long the node's alive key lives after a heartbeat.
    ttl: Duration,
    /// How long a reap lock lives unless the reaper renews it.
    reap_lock: Duration,
    /// Our alive key had expired when we beat: others may have reaped our
    /// entries, so the gateway must register its connections again.
    lapsed: AtomicBool,
    reap_entries: Script,
    reap_hook: std::sync::Mutex<Option<ReapHook>>,
    /// The connection of the heartbeat's own thread
    /// ([`Presence::dedicate_heartbeat`]); until then beats use the pool.
    beat_client: OnceLock<Client>,
}

impl RedisPresence {
    pub(crate) fn new(shared: Arc<Shared>, node: &str, heartbeat: Duration) -> Self {
        let ttl = (heartbeat * 2).max(Duration::from_millis(10));
        RedisPresence {
            shared,
            node: node.to_owned(),
            ttl,
            reap_lock: (ttl * 2).clamp(REAP_LOCK_MIN, REAP_LOCK_MAX),
            lapsed: AtomicBool::new(false),
            reap_entries: Script::new("presence_reap"),
            reap_hook: std::sync::Mutex::new(None),
            beat_client: OnceLock::new(),
        }
    }

    /// What beats and the heartbeat's own reads go through.
    fn beat_client(&self) -> &Client {
        self.beat_client
            .get()
            .unwrap_or_else(|| self.shared.pool.next())
    }

    /// Runs `hook` at each stage of every batch a reap works through
    /// (tests force races with it).
    #[doc(hidden)]
    pub fn set_reap_hook(&self, hook: ReapHook) {
        *self.reap_hook.lock().unwrap() = Some(hook);
    }

    /// Marks this node alive for two heartbeat intervals. Returns whether
    /// the alive key had expired (or never existed) before.
    pub(crate) async fn beat(&self) -> Result<bool> {
        let keys = &self.shared.keys;
        let client = self.beat_client();
        let before: Option<String> = client
            .set(
                keys.node_alive(&self.node),
                "1",
                Some(Expiration::PX(millis(self.ttl))),
                None,
                true,
            )
            .await
            .map_err(unavailable)?;
        let _: i64 = client
            .sadd(keys.nodes(), self.node.as_str())
            .await
            .map_err(unavailable)?;
        Ok(before.is_none())
    }

    async fn alive(&self, node: &str) -> Result<bool> {
        if node == self.node {
            // Asking Redis would make a node that missed beats see its own
            // connections vanish; it re-beats on its next heartbeat anyway.
            return Ok(true);
        }
        let n: i64 = self
            .shared
            .pool
            .exists(self.shared.keys.node_alive(node))
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    /// Keeps `{online}` in step with the user's connection hash after a
    /// removal. Removing and then looking again closes the race with an
    /// `add` on another node: that add writes the hash before it adds to
    /// `{online}`, so either our second look sees its connection, or its
    /// SADD comes after our SREM.
    ///
    /// A user with connections left is added again: a process stopped
    /// between its SREM and its second look left the user out, and the
    /// reaper, which settles every user of a dead node, repairs that.
    async fn settle_online(&self, user: &str) -> Result<()> {
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let left: i64 = pool.hlen(keys.conns(user)).await.map_err(unavailable)?;
        if left > 0 {
            let _: i64 = pool.sadd(keys.online(), user).await.map_err(unavailable)?;
            return Ok(());
        }
        let _: i64 = pool.srem(keys.online(), user).await.map_err(unavailable)?;
        let left: i64 = pool.hlen(keys.conns(user)).await.map_err(unavailable)?;
        if left > 0 {
            let _: i64 = pool.sadd(keys.online(), user).await.map_err(unavailable)?;
        }
        Ok(())
    }

    /// Removes the entries of every node whose alive key expired. One node
    /// reaps a given dead node at a time (a lock in the dead node's slot);
    /// every step is idempotent, so a reaper dying half-way only leaves work
    /// for the next one.
    async fn reap_dead_nodes(&self) -> Result<()> {
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let nodes: Vec<String> = pool.smembers(keys.nodes()).await.map_err(unavailable)?;
        for node in nodes {
            if self.alive(&node).await? {
                continue;
            }
            let locked: Option<String> = pool
                .set(
                    keys.node_reap_lock(&node),
                    self.node.as_str(),
                    Some(Expiration::PX(millis(self.reap_lock))),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map_err(unavailable)?;
            if locked.is_none() {
                continue;
            }
            let outcome = self.reap(&node).await;
            let _: i64 = pool
                .del(keys.node_reap_lock(&node))
                .await
                .map_err(unavailable)?;
            outcome?;
        }
        Ok(())
    }

    /// Deletes the entries of `members` (`<conn_id>:<user>` of a dead node)
    /// that still hold what was read of them, and settles their users;
    /// returns the members gone (deleted, already gone, or unreadable),
    /// which leave the node's set. An entry a node added again after the
    /// read holds a new `reg` and stays, with its member.
    async fn reap_batch(&self, members: &[String]) -> Result<Vec<String>> {
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let mut by_user: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut removed = Vec::with_capacity(members.len());
        for member in members {
            match member.split_once(':') {
                Some((conn_id, user)) => by_user.entry(user).or_default().push(conn_id),
                None => removed.push(member.clone()),
            }
        }
        // One pipelined batch instead of a round trip each: a reap that
        // takes long keeps the reaped node waiting.
        let reads = by_user.iter().map(|(user, ids)| {
            pool.hmget::<Vec<Option<String>>, _, _>(keys.conns(user), ids.clone())
        });
        let values = futures_util::future::try_join_all(reads)
            .await
            .map_err(unavailable)?;
        self.run_hook(ReapStage::Read).await;
        let mut deletes = Vec::new();
        for ((user, ids), values) in by_user.iter().zip(values) {
            let mut args = Vec::new();
            for (id, value) in ids.iter().zip(values) {
                match value {
                    Some(value) => args.extend([(*id).into(), value.into()]),
                    None => removed.push(format!("{id}:{user}")),
                }
            }
            if !args.is_empty() {
                let user = *user;
                let script = &self.reap_entries;
                deletes.push(async move {
                    let gone: Vec<String> = script.run(pool.next(), keys.conns(user), args).await?;
                    Ok::<_, CoreError>((user, gone))
                });
            }
        }
        for (user, gone) in futures_util::future::try_join_all(deletes).await? {
            removed.extend(gone.into_iter().map(|id| format!("{id}:{user}")));
        }
        for user in by_user.keys() {
            self.settle_online(user).await?;
        }
        Ok(removed)
    }

    async fn run_hook(&self, stage: ReapStage) {
        let hook = self.reap_hook.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook(stage).await;
        }
    }

    /// Puts back in `node`'s set the members of `removed` whose entry
    /// exists again: the node added it again after the delete and before
    /// the SREM (its SADD came first), and without its member no reaper
    /// would find it if the node died again.
    async fn restore_pointers(&self, node: &str, removed: &[String]) -> Result<()> {
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let parsed: Vec<(&String, &str, &str)> = removed
            .iter()
            .filter_map(|m| m.split_once(':').map(|(id, user)| (m, id, user)))
            .collect();
        let looks = parsed
            .iter()
            .map(|(_, id, user)| pool.hexists::<bool, _, _>(keys.conns(user), *id));
        let exists = futures_util::future::try_join_all(looks)
            .await
            .map_err(unavailable)?;
        let back: Vec<String> = parsed
            .iter()
            .zip(exists)
            .filter(|(_, exists)| *exists)
            .map(|((member, _, _), _)| (*member).clone())
            .collect();
        if !back.is_empty() {
            let _: i64 = pool
                .sadd(keys.node_conns(node), back)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn reap(&self, node: &str) -> Result<()> {
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        tracing::info!(node, "reaping presence of a node that stopped heartbeating");
        loop {
            // Stop if the node came back (same id restarted): what is left
            // may be its new connections.
            if self.alive(node).await? {
                return Ok(());
            }
            let members: Vec<String> = pool
                .srandmember(keys.node_conns(node), Some(REAP_BATCH as usize))
                .await
                .map_err(unavailable)?;
            if members.is_empty() {
                break;
            }
            let _: bool = pool
                .pexpire(keys.node_reap_lock(node), millis(self.reap_lock), None)
                .await
                .map_err(unavailable)?;
            let removed = self.reap_batch(&members).await?;
            if removed.is_empty() {
                // Every entry read was added again since: the node is
                // back, or coming back (it beats before it adds again).
                return Ok(());
            }
            self.run_hook(ReapStage::Deleted).await;
            let _: i64 = pool
                .srem(keys.node_conns(node), removed.clone())
                .await
                .map_err(unavailable)?;
            self.restore_pointers(node, &removed).await?;
        }
        if !self.alive(node).await? {
            let _: i64 = pool.srem(keys.nodes(), node).await.map_err(unavailable)?;
        }
        Ok(())
    }
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

fn member(conn: &ConnInfo) -> String {
    format!("{}:{}", conn.conn_id, conn.user_id)
}

#[async_trait]
impl Presence for RedisPresence {
    async fn add(&self, conn: &ConnInfo) -> Result<()> {
        validate_user_id(&conn.user_id)?;
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let entry = Entry {
            conn,
            reg: uuid::Uuid::new_v4().as_u64_pair().0,
        };
        let json = serde_json::to_string(&entry)
            .map_err(|e| CoreError::Invalid(format!("connection info: {e}")))?;
        // Node set first: from then on a reaper can find the entry.
        let _: i64 = pool
            .sadd(keys.node_conns(&conn.node_id), member(conn))
            .await
            .map_err(unavailable)?;
        let _: i64 = pool
            .hset(keys.conns(&conn.user_id), (conn.conn_id.to_string(), json))
            .await
            .map_err(unavailable)?;
        let _: i64 = pool
            .sadd(keys.online(), conn.user_id.as_str())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn remove(&self, conn: &ConnInfo) -> Result<()> {
        validate_user_id(&conn.user_id)?;
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let _: i64 = pool
            .hdel(keys.conns(&conn.user_id), conn.conn_id.to_string())
            .await
            .map_err(unavailable)?;
        self.settle_online(&conn.user_id).await?;
        // Node set last, so a crash before it leaves the reaper a pointer.
        let _: i64 = pool
            .srem(keys.node_conns(&conn.node_id), member(conn))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn connections(&self, user: &str) -> Result<Vec<ConnInfo>> {
        validate_user_id(user)?;
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let raw: HashMap<String, String> =
            pool.hgetall(keys.conns(user)).await.map_err(unavailable)?;
        let mut conns = Vec::with_capacity(raw.len());
        let mut garbage = Vec::new();
        for (conn_id, json) in raw {
            match serde_json::from_str::<ConnInfo>(&json) {
                Ok(conn) => conns.push(conn),
                Err(err) => {
                    tracing::warn!(%err, user, conn_id, "dropping unreadable presence entry");
                    garbage.push(conn_id);
                }
            }
        }
        // Leave out connections of nodes that stopped heartbeating, so a
        // crashed node stops counting without waiting for a reaper. Only
        // the reaper deletes them: it holds the dead node's reap lock, which
        // that node waits for before it registers its connections again.
        // Deleting here could remove an entry the node just added again.
        let nodes: BTreeSet<String> = conns.iter().map(|c| c.node_id.clone()).collect();
        let mut dead = BTreeSet::new();
        for node in nodes {
            if !self.alive(&node).await? {
                dead.insert(node);
            }
        }
        conns.retain(|c| !dead.contains(&c.node_id));
        if !garbage.is_empty() {
            let _: i64 = pool
                .hdel(keys.conns(user), garbage)
                .await
                .map_err(unavailable)?;
            self.settle_online(user).await?;
        }
        conns.sort_by_key(|c| (c.connected_at, c.conn_id));
        Ok(conns)
    }

    async fn online_users(&self) -> Result<u64> {
        // Reaping first makes the count exact: users only held by dead
        // nodes leave `{online}` before it is counted.
        self.reap_dead_nodes().await?;
        let n: u64 = self
            .shared
            .pool
            .scard(self.shared.keys.online())
            .await
            .map_err(unavailable)?;
        Ok(n)
    }

    /// `SCARD` of each live node's set of connections.
    async fn node_connections(&self) -> Result<BTreeMap<String, u64>> {
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let nodes: Vec<String> = pool.smembers(keys.nodes()).await.map_err(unavailable)?;
        let mut counts = BTreeMap::new();
        for node in nodes {
            if self.alive(&node).await? {
                let n: u64 = pool
                    .scard(keys.node_conns(&node))
                    .await
                    .map_err(unavailable)?;
                counts.insert(node, n);
            }
        }
        Ok(counts)
    }

    /// Beats, and reports a lapse of our own beats once no reaper is
    /// working on our entries any more: a reaper stops at its next batch
    /// when it sees us alive and holds our reap lock until then, so
    /// connections added after that are not removed again. Reaping others
    /// is `online_users`' part, so that a slow reap never delays a beat.
    async fn heartbeat(&self) -> Result<bool> {
        if self.beat().await? {
            self.lapsed.store(true, Ordering::Relaxed);
        }
        if !self.lapsed.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let reaping: i64 = self
            .beat_client()
            .exists(self.shared.keys.node_reap_lock(&self.node))
            .await
            .map_err(unavailable)?;
        if reaping > 0 {
            return Ok(false);
        }
        self.lapsed.store(false, Ordering::Relaxed);
        Ok(true)
    }

    /// Opens the heartbeat's own connection on the calling thread's
    /// runtime: fred drives a connection on the runtime that opened it, so
    /// beats from there wait neither on the node's busy runtime nor behind
    /// the pool's queued commands.
    async fn dedicate_heartbeat(&self) -> Result<()> {
        let client = self
            .shared
            .settings
            .builder(crate::COMMAND_CLIENT_EVENTS)?
            .build()
            .map_err(unavailable)?;
        client.init().await.map_err(unavailable)?;
        if self.beat_client.set(client).is_err() {
            tracing::debug!("the heartbeat already had a connection of its own");
        }
        Ok(())
    }
}
