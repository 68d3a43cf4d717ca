//! `[admission]`: when a node under pressure stops taking new connections
//! (`crate::admission`), and when it takes them again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Thresholds of the node's pressure signals. A node sheds (503 with
/// `Retry-After` to new WebSocket and SSE upgrades, `/readyz` 503) as soon
/// as one signal reaches its threshold; it accepts again once every signal
/// is at or below its `reopen_*` level and it has shed for `hold_ms`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionSettings {
    /// Off: the node never sheds (the signals are still measured and
    /// exported).
    pub enabled: bool,
    /// How often the signals are sampled: a timer of this period on its own
    /// task, whose lateness is the event-loop lag.
    pub sample_ms: u64,
    /// Event-loop lag (how late that timer fired) at which the node sheds.
    pub lag_ms: u64,
    /// Lag at or below which it may accept again.
    pub reopen_lag_ms: u64,
    /// Mean duration of the Redis calls of one sample period at which the
    /// node sheds (a Redis that is slow for everyone, or a node too starved
    /// to read its replies).
    pub redis_ms: u64,
    /// Mean Redis call time at or below which it may accept again.
    pub reopen_redis_ms: u64,
    /// Open connections at which the node sheds (0: not a signal). Unlike
    /// `limits.max_connections`, a hard cap, this one turns readiness off
    /// so the Service sends new clients elsewhere.
    pub max_connections: usize,
    /// Connections at or below which it may accept again (0: 90 % of
    /// `max_connections`).
    pub reopen_connections: usize,
    /// Least time a node sheds once it started, so it does not flap.
    pub hold_ms: u64,
    /// The `Retry-After` a refused upgrade is given, in seconds.
    pub retry_after_secs: u64,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            enabled: true,
            sample_ms: 100,
            lag_ms: 250,
            reopen_lag_ms: 50,
            redis_ms: 500,
            reopen_redis_ms: 100,
            max_connections: 0,
            reopen_connections: 0,
            hold_ms: 5_000,
            retry_after_secs: 5,
        }
    }
}

/// The settings checked and in the units the gate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub enabled: bool,
    pub sample: Duration,
    pub lag: Duration,
    pub reopen_lag: Duration,
    pub redis: Duration,
    pub reopen_redis: Duration,
    /// `None`: connections are not a signal.
    pub connections: Option<usize>,
    pub reopen_connections: usize,
    pub hold: Duration,
    pub retry_after_secs: u64,
}

impl AdmissionSettings {
    /// Each error names the key and the value.
    pub fn thresholds(&self) -> anyhow::Result<Thresholds> {
        let ms = Duration::from_millis;
        anyhow::ensure!(
            self.sample_ms > 0,
            "admission.sample_ms = 0: must be greater than 0"
        );
        for (high, low, value_high, value_low) in [
            ("lag_ms", "reopen_lag_ms", self.lag_ms, self.reopen_lag_ms),
            (
                "redis_ms",
                "reopen_redis_ms",
                self.redis_ms,
                self.reopen_redis_ms,
            ),
        ] {
            anyhow::ensure!(
                value_low < value_high,
                "admission.{low} = {value_low}: must be below admission.{high} ({value_high})"
            );
        }
        let connections = (self.max_connections > 0).then_some(self.max_connections);
        let reopen_connections = match self.reopen_connections {
            0 => self.max_connections * 9 / 10,
            n => n,
        };
        anyhow::ensure!(
            connections.is_none() || reopen_connections < self.max_connections,
            "admission.reopen_connections = {reopen_connections}: must be below \
             admission.max_connections ({})",
            self.max_connections
        );
        Ok(Thresholds {
            enabled: self.enabled,
            sample: ms(self.sample_ms),
            lag: ms(self.lag_ms),
            reopen_lag: ms(self.reopen_lag_ms),
            redis: ms(self.redis_ms),
            reopen_redis: ms(self.reopen_redis_ms),
            connections,
            reopen_connections,
            hold: ms(self.hold_ms),
            retry_after_secs: self.retry_after_secs,
        })
    }
}
