//! What a node checks of the Redis it is given before it serves anyone:
//! Redis is Herald's store, so a server that may evict keys would silently
//! delete inboxes and read states, and one that persists nothing loses
//! everything on a restart.
//!
//! - `maxmemory-policy` other than `noeviction` (an `allkeys-*` or
//!   `volatile-*` policy): refused, the error names the setting.
//! - No AOF (`appendonly no`) and no RDB save points (`save ""`): a warning.
//! - `CONFIG` renamed or forbidden (managed Redis services, ACLs): a
//!   warning that nothing was checked, and the node starts.
//!
//! On a Cluster every primary is asked; elsewhere the server the pool is
//! connected to (a Sentinel's current primary).

use std::collections::HashMap;

use fred::interfaces::{ClientLike, ClusterInterface};
use fred::prelude::{Pool, Value};
use fred::types::config::Options;
use fred::types::{ClusterHash, CustomCommand};
use herald_core::{CoreError, Result};

/// What one server said of the settings checked.
struct ServerConfig {
    /// `host:port` as the pool knows it, for messages.
    server: String,
    values: HashMap<String, String>,
}

impl ServerConfig {
    fn get(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }
}

/// Runs the checks on every server `pool` writes to; an error when one
/// evicts keys.
pub(crate) async fn check(pool: &Pool, clustered: bool) -> Result<()> {
    let configs = match read_configs(pool, clustered).await {
        Ok(configs) => configs,
        Err(err) => {
            tracing::warn!(
                %err,
                "CONFIG GET is not allowed on this Redis (renamed or forbidden): \
                 maxmemory-policy and persistence were not checked; make sure \
                 maxmemory-policy is noeviction and AOF or RDB is on"
            );
            return Ok(());
        }
    };
    for config in &configs {
        judge(config)?;
    }
    Ok(())
}

/// Refuses an evicting policy; warns when nothing is persisted.
fn judge(config: &ServerConfig) -> Result<()> {
    let policy = config.get("maxmemory-policy");
    if policy.starts_with("allkeys-") || policy.starts_with("volatile-") {
        return Err(CoreError::Invalid(format!(
            "maxmemory-policy is {policy} on {}: Redis would evict Herald's keys \
             (inboxes, read states) when it reaches maxmemory; set maxmemory-policy \
             to noeviction (docs/redis.md)",
            config.server
        )));
    }
    if config.get("appendonly") == "no" && config.get("save").trim().is_empty() {
        tracing::warn!(
            server = %config.server,
            "redis persists nothing (appendonly no, no save points): a restart of \
             Redis loses every inbox; turn on AOF (appendonly yes) or RDB snapshots"
        );
    }
    Ok(())
}

async fn read_configs(
    pool: &Pool,
    clustered: bool,
) -> std::result::Result<Vec<ServerConfig>, fred::error::Error> {
    let client = pool.next();
    let servers = if clustered {
        client
            .cached_cluster_state()
            .map(|routing| routing.unique_primary_nodes())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    if servers.is_empty() {
        let values = config_get(client).await?;
        let server = client
            .active_connections()
            .first()
            .map_or_else(|| "?".to_owned(), ToString::to_string);
        return Ok(vec![ServerConfig { server, values }]);
    }
    let mut configs = Vec::with_capacity(servers.len());
    for server in servers {
        let on_node = client.with_options(&Options {
            cluster_node: Some(server.clone()),
            ..Options::default()
        });
        let values = config_get(&on_node).await?;
        configs.push(ServerConfig {
            server: server.to_string(),
            values,
        });
    }
    Ok(configs)
}

/// `CONFIG GET maxmemory-policy appendonly save` (several names at once:
/// Redis 7), as a map of name to value.
async fn config_get(
    client: &impl ClientLike,
) -> std::result::Result<HashMap<String, String>, fred::error::Error> {
    let command = CustomCommand::new_static("CONFIG", ClusterHash::Random, false);
    let reply: Value = client
        .custom(
            command,
            vec!["GET", "maxmemory-policy", "appendonly", "save"],
        )
        .await?;
    reply.convert()
}
