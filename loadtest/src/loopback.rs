//! Benchmarks flood what they target, so they refuse anything that is not
//! on this machine's loopback interface.

use anyhow::{bail, Context};

/// Refuses a target (`http://host:port`) that does not resolve to
/// loopback addresses only.
pub async fn check_loopback(base: &str) -> anyhow::Result<()> {
    let authority = base
        .strip_prefix("http://")
        .with_context(|| format!("target {base}: only http:// or ws:// targets"))?;
    let authority = authority.split('/').next().unwrap_or(authority);
    let addrs: Vec<_> = tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("resolving {authority}"))?
        .collect();
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        bail!("target {base} is not a loopback address; this benchmark runs on loopback only");
    }
    Ok(())
}

/// [`check_loopback`] for every target.
pub async fn check_all_loopback(bases: &[String]) -> anyhow::Result<()> {
    for b in bases {
        check_loopback(b).await?;
    }
    Ok(())
}

/// A `host:port` (a Redis address) that must be on loopback too.
pub async fn check_loopback_addr(addr: &str) -> anyhow::Result<()> {
    check_loopback(&format!("http://{addr}")).await
}
