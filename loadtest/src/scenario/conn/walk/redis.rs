//! The gateways' Redis as the walk sees it: its `INFO memory`, read at
//! each step through herald-testing's RESP client.

use anyhow::{anyhow, bail, Context};
use herald_harness::redis_info::field;
use herald_testing::{Resp, RespConn};
use serde::Serialize;

/// Redis `INFO memory`, the two lines the walk reads, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RedisMemory {
    pub used_memory: u64,
    pub used_memory_rss: u64,
}

pub fn parse_info_memory(info: &str) -> Option<RedisMemory> {
    Some(RedisMemory {
        used_memory: field(info, "used_memory")?,
        used_memory_rss: field(info, "used_memory_rss")?,
    })
}

/// `redis://[[user]:password@]host:port[/db]` → (host:port, user, password).
pub fn parse_redis_url(url: &str) -> anyhow::Result<(String, Option<String>, Option<String>)> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| anyhow!("--redis-url must be redis://…: {url}"))?;
    let rest = rest.split('/').next().unwrap_or(rest);
    let (creds, host) = match rest.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, rest),
    };
    let (user, pass) = match creds {
        None => (None, None),
        Some(c) => match c.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
            None => (None, Some(c.to_owned())),
        },
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:6379")
    };
    Ok((host, user, pass))
}

/// A blocking connection to the Redis at `url`, authenticated when the URL
/// carries a password (also the `schedule` scenario's, to watch its
/// indexes).
pub fn connect(url: &str) -> anyhow::Result<RespConn> {
    let (host, user, pass) = parse_redis_url(url)?;
    let mut conn = RespConn::connect(host.as_str())
        .with_context(|| format!("connecting to Redis at {host}"))?;
    if let Some(pass) = &pass {
        let mut auth = vec!["AUTH"];
        auth.extend(user.as_deref());
        auth.push(pass);
        match conn.call(&auth)? {
            Resp::Simple(_) => {}
            other => bail!("Redis AUTH: {}", other.first_line()),
        }
    }
    Ok(conn)
}

/// One `INFO memory` of the Redis at `url` over a fresh connection (each
/// step given up after 5 s).
pub async fn redis_memory(url: &str) -> anyhow::Result<RedisMemory> {
    let url = url.to_owned();
    let info = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        Ok(connect(&url)?.info("memory")?)
    })
    .await??;
    parse_info_memory(&info).ok_or_else(|| anyhow!("Redis INFO memory lacks used_memory"))
}
