//! `[fanout]` and `[schedule]`: the node's two background workers that
//! append for others (topic publishes, scheduled sends).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Publishes to topics (`POST /v1/topics/{topic}/messages`): each is a
/// job that one node's worker appends, chunk by chunk.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FanOutSection {
    /// Run this node's worker (a node that only serves connections may
    /// leave the jobs to others).
    pub worker: bool,
    /// Receivers appended per step; progress is recorded after each.
    pub chunk: usize,
    /// How often an idle worker looks for jobs queued on other nodes.
    pub poll_ms: u64,
    /// Most messages per second this node's worker appends (0: no limit),
    /// so that a huge publish does not crowd out unicast traffic.
    pub rate_per_sec: u32,
    /// A job whose worker recorded no progress this long (its node died)
    /// is taken over by another node (Redis backend).
    pub claim_after_secs: u64,
    /// A job handed out this many times is marked failed.
    pub max_attempts: u32,
}

impl Default for FanOutSection {
    fn default() -> Self {
        let d = herald_core::FanOutSettings::default();
        FanOutSection {
            worker: true,
            chunk: d.chunk,
            poll_ms: d.poll.as_millis() as u64,
            rate_per_sec: d.rate_per_sec,
            claim_after_secs: 30,
            max_attempts: d.max_attempts,
        }
    }
}

impl FanOutSection {
    pub fn core(&self) -> anyhow::Result<herald_core::FanOutSettings> {
        if self.chunk == 0 || self.chunk > 10_000 {
            anyhow::bail!("fanout.chunk: must be 1 to 10000, not {}", self.chunk);
        }
        if self.claim_after_secs == 0 {
            anyhow::bail!("fanout.claim_after_secs: must be at least 1");
        }
        Ok(herald_core::FanOutSettings {
            chunk: self.chunk,
            poll: Duration::from_millis(self.poll_ms.max(1)),
            rate_per_sec: self.rate_per_sec,
            max_attempts: self.max_attempts.max(1),
        })
    }
}

/// Scheduled sends (`deliver_at`): each node's scheduler claims what came
/// due and appends it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSection {
    /// Run this node's scheduler (at least one node must).
    pub worker: bool,
    /// How often it looks for due sends.
    pub poll_ms: u64,
    /// Most sends one claim takes.
    pub batch: usize,
    /// How long a claim holds sends back from other nodes: what a node
    /// that dies held is delivered by another this much later at most.
    pub lease_ms: u64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        let d = herald_core::ScheduleSettings::default();
        ScheduleSection {
            worker: true,
            poll_ms: d.poll.as_millis() as u64,
            batch: d.batch,
            lease_ms: d.lease.as_millis() as u64,
        }
    }
}

impl ScheduleSection {
    pub fn core(&self) -> anyhow::Result<herald_core::ScheduleSettings> {
        if self.batch == 0 || self.batch > 10_000 {
            anyhow::bail!("schedule.batch: must be 1 to 10000, not {}", self.batch);
        }
        if self.poll_ms == 0 {
            anyhow::bail!("schedule.poll_ms: must be at least 1");
        }
        if self.lease_ms < 100 {
            anyhow::bail!("schedule.lease_ms: must be at least 100");
        }
        Ok(herald_core::ScheduleSettings {
            poll: Duration::from_millis(self.poll_ms),
            batch: self.batch,
            lease: Duration::from_millis(self.lease_ms),
        })
    }
}
