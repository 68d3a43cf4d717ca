//! What admission control and rebalancing report: the two ways a node
//! keeps its share of the cluster's connections.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::registry::{counter, register};

/// What rebalancing reports (`crate::rebalance`).
pub(super) struct RebalanceMetrics {
    pub(super) moved: IntCounter,
    pub(super) rounds: IntCounter,
}

impl RebalanceMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        RebalanceMetrics {
            moved: counter(
                r,
                "rebalance_moved_total",
                "Connections this node asked to reconnect elsewhere because it held more than its share",
            ),
            rounds: counter(
                r,
                "rebalance_rounds_total",
                "Rounds in which this node moved connections (each down to the cluster's mean)",
            ),
        }
    }
}

/// What admission control reports (`crate::admission`).
#[derive(Clone)]
pub struct AdmissionMetrics {
    /// 1 for the reason the node sheds for, 0 for the others.
    shedding: [IntGauge; 3],
    refusals: [IntCounter; 3],
    lag: prometheus::Gauge,
    redis_mean: prometheus::Gauge,
}

impl AdmissionMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        use crate::admission::Pressure;
        let shedding = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "admission_shedding",
                    "1 while the node refuses new connections (503, readiness off), by the signal that closed it",
                ),
                &["reason"],
            )
            .unwrap(),
        );
        let refusals = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "admission_refusals_total",
                    "WebSocket and SSE upgrades refused by admission control, by the signal it sheds for",
                ),
                &["reason"],
            )
            .unwrap(),
        );
        let gauge =
            |name: &str, help: &str| register(r, prometheus::Gauge::new(name, help).unwrap());
        AdmissionMetrics {
            shedding: Pressure::ALL.map(|p| shedding.with_label_values(&[p.as_str()])),
            refusals: Pressure::ALL.map(|p| refusals.with_label_values(&[p.as_str()])),
            lag: gauge(
                "event_loop_lag_seconds",
                "How late the admission sampler's timer fired, last sample",
            ),
            redis_mean: gauge(
                "admission_redis_mean_seconds",
                "Mean time of this node's Redis calls in the last sample period (0 without calls)",
            ),
        }
    }

    pub fn set_shedding(&self, pressure: Option<crate::admission::Pressure>) {
        for (i, gauge) in self.shedding.iter().enumerate() {
            gauge.set(pressure.is_some_and(|p| p as usize == i + 1) as i64);
        }
    }

    pub fn refused(&self, pressure: crate::admission::Pressure) {
        self.refusals[pressure as usize - 1].inc();
    }

    /// Every refusal so far, whatever the reason.
    pub fn refusals(&self) -> u64 {
        self.refusals.iter().map(IntCounter::get).sum()
    }

    pub fn sampled(&self, reading: &crate::admission::Reading) {
        self.lag.set(reading.lag.as_secs_f64());
        self.redis_mean
            .set(reading.redis.map_or(0.0, |d| d.as_secs_f64()));
    }
}
