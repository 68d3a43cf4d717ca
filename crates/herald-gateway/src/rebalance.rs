//! Rebalancing after scale-out: WebSockets live for hours, so nodes an
//! autoscaler adds would sit idle while the old ones keep their load. Every
//! `rebalance.interval_ms` each node reads every live node's connection
//! count from presence; a node holding more than `mean × (1 + tolerance)`
//! asks its excess over the mean (never more) to reconnect — the drain's
//! `reconnect` frame with its jitter, at most `rebalance.rate_per_sec` —
//! and the Service lands those clients on any node. It does not move while
//! the cluster converges: not in its first round, not when any node's count
//! changed by more than half the tolerance band since the last read, and
//! not for `settle_ms` after its own move (`plan.rs`). Why this settles in
//! a bounded number of rounds: `docs/operations.md`. While it moves and
//! settles it takes no new connections (`door.rs`), so its movers land on
//! the other nodes.

mod door;
mod plan;

use std::sync::Weak;

use herald_core::ConnEvent;
use rand::seq::SliceRandom;

use crate::node::{Node, PACING_STEP};

pub use door::{Door, Moving};
pub use plan::{Decision, Planner};

/// Reads the counts and moves when the plan says so, until the node is
/// dropped or drains; returns at once when rebalancing is off.
pub async fn run(node: Weak<Node>) {
    let Some(settings) = node.upgrade().and_then(|n| n.settings.rebalancing().ok()) else {
        return;
    };
    if !settings.enabled {
        return;
    }
    let mut planner = Planner::new(settings);
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else { return };
        if node.is_shutting_down() {
            return;
        }
        let counts = match node.presence.node_connections().await {
            Ok(counts) => counts,
            Err(err) => {
                tracing::warn!(%err, "rebalance: could not read the nodes' connection counts");
                continue;
            }
        };
        if let Decision::Move(excess) = planner.decide(&node.id, &counts, std::time::Instant::now())
        {
            let total: u64 = counts.values().sum();
            tracing::info!(
                moving = excess,
                holds = counts.get(&node.id).copied().unwrap_or(0),
                mean = total / counts.len() as u64,
                nodes = counts.len(),
                "rebalance: asking connections to reconnect elsewhere"
            );
            // Shut before the first `reconnect` goes out, so no mover lands
            // back here (`door.rs`).
            node.rebalance_door.shut();
            let moved = move_connections(&node, excess, settings.rate_per_sec).await;
            node.metrics.rebalanced(moved);
            let now = std::time::Instant::now();
            planner.moved(now);
            node.rebalance_door.shut_until(now + settings.settle);
        }
    }
}

/// Hands `count` connections picked at random the drain's event (answer
/// what is pending, `reconnect` after a jittered delay, close 1001), at
/// most `rate_per_sec` a second. Returns how many were asked.
async fn move_connections(node: &Node, count: usize, rate_per_sec: u32) -> usize {
    let mut conns = node.hub.connections();
    conns.shuffle(&mut rand::rng());
    conns.truncate(count);
    let steps_per_sec = (1_000 / PACING_STEP.as_millis()).max(1) as usize;
    let per_step = (rate_per_sec as usize).div_ceil(steps_per_sec);
    let max_delay = node.settings.drain.max_reconnect_delay_ms.max(1);
    node.offer_in_steps(&conns, per_step, |_| ConnEvent::Drain {
        after_ms: rand::random_range(0..max_delay),
    })
    .await;
    conns.len()
}
