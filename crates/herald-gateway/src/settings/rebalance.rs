//! `[rebalance]`: whether and how fast a node holding more than its share
//! of the cluster's connections asks some of them to move
//! (`crate::rebalance`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a node above the mean asks its excess to reconnect elsewhere.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RebalanceSettings {
    /// Off by default: a move closes live connections on purpose, which is
    /// only worth it behind a Service that spreads new connections over
    /// every node (an operator turns it on with the autoscaler).
    pub enabled: bool,
    /// A node moves connections only while it holds more than
    /// `mean × (1 + tolerance)`, and then only down to the mean.
    pub tolerance: f64,
    /// Most connections a node asks to move per second.
    pub rate_per_sec: u32,
    /// How often a node reads every node's connection count.
    pub interval_ms: u64,
    /// After a move, how long a node waits before it moves again, so its
    /// clients have reconnected (above `drain.max_reconnect_delay_ms`, the
    /// jitter they wait first) and the counts it reads are settled.
    pub settle_ms: u64,
}

impl Default for RebalanceSettings {
    fn default() -> Self {
        RebalanceSettings {
            enabled: false,
            tolerance: 0.15,
            rate_per_sec: 100,
            interval_ms: 5_000,
            settle_ms: 10_000,
        }
    }
}

/// The settings checked, in the units the rebalancer uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebalancing {
    pub enabled: bool,
    pub tolerance: f64,
    pub rate_per_sec: u32,
    pub interval: Duration,
    pub settle: Duration,
}

impl RebalanceSettings {
    /// Each error names the key and the value. `max_reconnect_delay_ms` is
    /// the drain's jitter, which moved clients wait too.
    pub fn checked(&self, max_reconnect_delay_ms: u64) -> anyhow::Result<Rebalancing> {
        anyhow::ensure!(
            self.tolerance > 0.0 && self.tolerance <= 1.0,
            "rebalance.tolerance = {}: must be above 0 and at most 1",
            self.tolerance
        );
        anyhow::ensure!(
            self.rate_per_sec > 0,
            "rebalance.rate_per_sec = 0: must be greater than 0 (turn it off with enabled = false)"
        );
        anyhow::ensure!(
            self.interval_ms > 0,
            "rebalance.interval_ms = 0: must be greater than 0"
        );
        anyhow::ensure!(
            self.settle_ms > max_reconnect_delay_ms,
            "rebalance.settle_ms = {}: must be above drain.max_reconnect_delay_ms ({max_reconnect_delay_ms}), \
             the delay moved clients wait before they reconnect",
            self.settle_ms
        );
        Ok(Rebalancing {
            enabled: self.enabled,
            tolerance: self.tolerance,
            rate_per_sec: self.rate_per_sec,
            interval: Duration::from_millis(self.interval_ms),
            settle: Duration::from_millis(self.settle_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named() {
        let bad = |s: RebalanceSettings| s.checked(1_000).unwrap_err().to_string();
        let base = RebalanceSettings::default();
        assert!(bad(RebalanceSettings {
            tolerance: 0.0,
            ..base.clone()
        })
        .contains("rebalance.tolerance = 0"));
        assert!(bad(RebalanceSettings {
            rate_per_sec: 0,
            ..base.clone()
        })
        .contains("rebalance.rate_per_sec = 0"));
        assert!(bad(RebalanceSettings {
            settle_ms: 1_000,
            ..base.clone()
        })
        .contains("rebalance.settle_ms = 1000"));
        assert!(base.checked(1_000).is_ok());
    }
}
