//! The node's presence heartbeat, on a thread and a runtime of its own.
//!
//! A node whose runtime is starved of CPU (a hot pod right before the
//! autoscaler adds more) would otherwise beat late, be taken for dead and
//! reaped, then register every connection again: the spiral of issue 23.
//! Here the beat runs on its own OS thread, over a Redis connection opened
//! on that thread's runtime (`Presence::dedicate_heartbeat`), so neither
//! the busy worker threads nor the shared connections' queue delay it.
//! The rest of the periodic work (reaping others, counts for metrics) stays
//! on the node's runtime (`node.rs`, `housekeeping_loop`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use herald_core::ConnEvent;
use tokio::runtime::Handle;

use super::Node;

/// Starts the heartbeat thread; it ends one beat after the node is
/// dropped. `main` is the node's runtime, where re-registering runs.
pub(super) fn spawn(node: Weak<Node>, main: Handle) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("herald-heartbeat".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(beat(node, main)),
                Err(e) => tracing::error!(%e, "no runtime for the presence heartbeat"),
            }
        })?;
    Ok(())
}

/// Tells presence the node is alive every `node.heartbeat_ms`.
async fn beat(node: Weak<Node>, main: Handle) {
    let (period, presence) = match node.upgrade() {
        Some(n) => (
            Duration::from_millis(n.settings.node.heartbeat_ms),
            n.presence.clone(),
        ),
        None => return,
    };
    if let Err(e) = presence.dedicate_heartbeat().await {
        tracing::warn!(%e, "the presence heartbeat has no connection of its own; it beats over the shared ones");
    }
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let lapsed = presence.heartbeat().await;
        let Some(node) = node.upgrade() else { return };
        match lapsed {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!(
                    connections = node.hub.connection_count(),
                    per_sec = node.settings.node.reregister_per_sec,
                    "presence had given this node up for dead; registering its connections again"
                );
                node.metrics.presence_lapsed();
                main.spawn(reregister(node));
            }
            Err(e) => tracing::warn!(%e, "presence heartbeat failed"),
        }
    }
}

/// Asks every connection to add itself to presence again, at most
/// `node.reregister_per_sec` a second: all at once, they would queue
/// behind each other on the shared Redis connections and time out.
async fn reregister(node: Arc<Node>) {
    let per_step = (node.settings.node.reregister_per_sec as usize).div_ceil(10);
    let conns = node.hub.connections();
    node.offer_in_steps(&conns, per_step, |_| ConnEvent::Reregister)
        .await;
}
