//! The task that samples the pressure signals. It runs on the node's own
//! runtime on purpose: how late its timer fires is the lag every
//! connection's task sees.

use std::sync::Weak;

use tokio::time::Instant;

use super::Reading;
use crate::node::Node;

/// Samples every `admission.sample_ms` until the node is dropped.
pub async fn sample(node: Weak<Node>) {
    let period = match node.upgrade() {
        Some(n) => n.admission.thresholds().sample,
        None => return,
    };
    loop {
        let due = Instant::now() + period;
        tokio::time::sleep_until(due).await;
        let lag = Instant::now().saturating_duration_since(due);
        let Some(node) = node.upgrade() else { return };
        let reading = Reading {
            lag,
            redis: node.metrics.take_redis_mean(),
            connections: node.hub.connection_count(),
        };
        node.admission.observe(&reading, std::time::Instant::now());
    }
}
