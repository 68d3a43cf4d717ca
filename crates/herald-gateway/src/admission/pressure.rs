//! What the gate decides on: the signals of one sample and the one that
//! closed it. Apart from the gate so the metrics can name them without
//! depending on the gate, which reports to the metrics.

use std::time::Duration;

/// Why a node sheds: the first signal that reached its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Pressure {
    Lag = 1,
    Redis = 2,
    Connections = 3,
}

impl Pressure {
    pub const ALL: [Pressure; 3] = [Pressure::Lag, Pressure::Redis, Pressure::Connections];

    /// The metrics' `reason` label and the logs' word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Pressure::Lag => "event_loop_lag",
            Pressure::Redis => "redis_latency",
            Pressure::Connections => "connections",
        }
    }

    pub(super) fn from_u8(value: u8) -> Option<Pressure> {
        Pressure::ALL.into_iter().find(|p| *p as u8 == value)
    }
}

/// One sample of the signals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// How late the sampler's timer fired.
    pub lag: Duration,
    /// Mean time of the Redis calls since the last sample; `None` when
    /// there were none (an idle Redis is no pressure).
    pub redis: Option<Duration>,
    pub connections: usize,
}
