//! The gate's state: open, or shedding since when and why; and the
//! decisions that change it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::pressure::{Pressure, Reading};
use crate::error::ApiError;
use crate::metrics::AdmissionMetrics;
use crate::settings::Thresholds;

struct Shedding {
    pressure: Pressure,
    since: Instant,
    /// The refusals counted when it started, for the closing log line.
    refused_before: u64,
}

/// Whether this node takes new connections.
pub struct Gate {
    limits: Thresholds,
    /// 0 while open, else the [`Pressure`] it sheds for: what every
    /// handshake reads, without a lock.
    state: AtomicU8,
    shedding: Mutex<Option<Shedding>>,
    metrics: AdmissionMetrics,
}

impl Gate {
    pub fn new(limits: Thresholds, metrics: AdmissionMetrics) -> Gate {
        Gate {
            limits,
            state: AtomicU8::new(0),
            shedding: Mutex::new(None),
            metrics,
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.limits
    }

    /// Why the node sheds now; `None` while it takes connections.
    pub fn shedding(&self) -> Option<Pressure> {
        Pressure::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// At a handshake, with `connections` open: the 503 to answer when the
    /// node sheds. Reaching the connection threshold closes the gate here
    /// rather than at the next sample, so the cap holds exactly.
    pub fn admit(&self, connections: usize) -> Result<(), Refusal> {
        if !self.limits.enabled {
            return Ok(());
        }
        if self.shedding().is_none()
            && self
                .limits
                .connections
                .is_some_and(|max| connections >= max)
        {
            let reading = Reading {
                connections,
                ..Reading::default()
            };
            self.start(Pressure::Connections, &reading, Instant::now());
        }
        match self.shedding() {
            None => Ok(()),
            Some(pressure) => {
                self.metrics.refused(pressure);
                Err(Refusal {
                    pressure,
                    retry_after_secs: self.limits.retry_after_secs,
                })
            }
        }
    }

    /// Takes one sample: closes the gate when a signal reached its
    /// threshold, opens it when every one is back at its reopen level and
    /// the hold has passed.
    pub fn observe(&self, reading: &Reading, now: Instant) {
        self.metrics.sampled(reading);
        let shedding = self.shedding.lock().unwrap().as_ref().map(|s| s.since);
        match shedding {
            None if self.limits.enabled => {
                if let Some(pressure) = self.over(reading) {
                    self.start(pressure, reading, now);
                }
            }
            None => {}
            Some(since) => {
                let held = now.saturating_duration_since(since) >= self.limits.hold;
                if !self.limits.enabled || (held && self.calm(reading)) {
                    self.stop(now);
                }
            }
        }
    }

    /// The first signal at or over its threshold.
    fn over(&self, r: &Reading) -> Option<Pressure> {
        let l = &self.limits;
        if r.lag >= l.lag {
            Some(Pressure::Lag)
        } else if r.redis.is_some_and(|d| d >= l.redis) {
            Some(Pressure::Redis)
        } else if l.connections.is_some_and(|max| r.connections >= max) {
            Some(Pressure::Connections)
        } else {
            None
        }
    }

    /// Every signal at or below its reopen level.
    fn calm(&self, r: &Reading) -> bool {
        let l = &self.limits;
        r.lag <= l.reopen_lag
            && r.redis.is_none_or(|d| d <= l.reopen_redis)
            && (l.connections.is_none() || r.connections <= l.reopen_connections)
    }

    fn start(&self, pressure: Pressure, reading: &Reading, now: Instant) {
        let mut shedding = self.shedding.lock().unwrap();
        if shedding.is_some() {
            return;
        }
        *shedding = Some(Shedding {
            pressure,
            since: now,
            refused_before: self.metrics.refusals(),
        });
        self.state.store(pressure as u8, Ordering::Relaxed);
        self.metrics.set_shedding(Some(pressure));
        tracing::warn!(
            reason = pressure.as_str(),
            lag_ms = reading.lag.as_millis() as u64,
            redis_ms = reading.redis.map(|d| d.as_millis() as u64),
            connections = reading.connections,
            "admission: shedding new connections (503, readiness off)"
        );
    }

    fn stop(&self, now: Instant) {
        let Some(ended) = self.shedding.lock().unwrap().take() else {
            return;
        };
        self.state.store(0, Ordering::Relaxed);
        self.metrics.set_shedding(None);
        tracing::info!(
            reason = ended.pressure.as_str(),
            shed_ms = now.saturating_duration_since(ended.since).as_millis() as u64,
            refused = self.metrics.refusals() - ended.refused_before,
            "admission: accepting new connections again"
        );
    }
}

/// An upgrade refused while the node sheds.
#[derive(Debug)]
pub struct Refusal {
    pub pressure: Pressure,
    pub retry_after_secs: u64,
}

impl IntoResponse for Refusal {
    /// 503 with `Retry-After` and the error body naming the signal.
    fn into_response(self) -> Response {
        let secs = self.retry_after_secs;
        let mut response = ApiError::unavailable(format!(
            "this node is overloaded ({}); retry after {secs} s or connect to another",
            self.pressure.as_str()
        ))
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::settings::AdmissionSettings;

    fn gate(settings: AdmissionSettings) -> Gate {
        let metrics = crate::metrics::Metrics::new("t").admission();
        Gate::new(settings.thresholds().unwrap(), metrics)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn each_signal_closes_the_gate_and_it_opens_with_hysteresis() {
        let g = gate(AdmissionSettings {
            lag_ms: 200,
            reopen_lag_ms: 50,
            redis_ms: 300,
            reopen_redis_ms: 100,
            hold_ms: 1_000,
            ..AdmissionSettings::default()
        });
        let t0 = Instant::now();
        let calm = Reading::default();
        g.observe(
            &Reading {
                lag: ms(199),
                ..calm
            },
            t0,
        );
        assert_eq!(g.shedding(), None);
        g.observe(
            &Reading {
                lag: ms(200),
                ..calm
            },
            t0,
        );
        assert_eq!(g.shedding(), Some(Pressure::Lag));
        assert!(g.admit(0).is_err());
        // Calm again, but not for the hold: still shedding.
        g.observe(&calm, t0 + ms(999));
        assert_eq!(g.shedding(), Some(Pressure::Lag));
        // Held, but between the two levels: still shedding.
        g.observe(
            &Reading {
                lag: ms(51),
                ..calm
            },
            t0 + ms(1_000),
        );
        assert_eq!(g.shedding(), Some(Pressure::Lag));
        g.observe(
            &Reading {
                lag: ms(50),
                ..calm
            },
            t0 + ms(1_000),
        );
        assert_eq!(g.shedding(), None);
        assert!(g.admit(0).is_ok());
        // Redis: a sample without calls is no pressure.
        g.observe(
            &Reading {
                redis: None,
                ..calm
            },
            t0 + ms(2_000),
        );
        assert_eq!(g.shedding(), None);
        let slow = Reading {
            redis: Some(ms(300)),
            ..calm
        };
        g.observe(&slow, t0 + ms(2_000));
        assert_eq!(g.shedding(), Some(Pressure::Redis));
        let better = Reading {
            redis: Some(ms(101)),
            ..calm
        };
        g.observe(&better, t0 + ms(3_000));
        assert_eq!(g.shedding(), Some(Pressure::Redis));
        g.observe(
            &Reading {
                redis: None,
                ..calm
            },
            t0 + ms(3_000),
        );
        assert_eq!(g.shedding(), None);
    }

    #[test]
    fn the_connection_cap_closes_at_the_handshake_and_reopens_below_its_level() {
        let g = gate(AdmissionSettings {
            max_connections: 10,
            hold_ms: 0,
            ..AdmissionSettings::default()
        });
        assert!(g.admit(9).is_ok());
        let refused = g.admit(10).unwrap_err().into_response();
        assert_eq!(refused.status(), 503);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "5");
        let at = |connections| Reading {
            connections,
            ..Reading::default()
        };
        // 90 % of the cap is the default reopen level.
        g.observe(&at(10), Instant::now());
        g.observe(&at(10), Instant::now());
        g.observe(&at(9), Instant::now());
        assert_eq!(g.shedding(), None);
        let off = gate(AdmissionSettings {
            enabled: false,
            max_connections: 1,
            lag_ms: 1,
            reopen_lag_ms: 0,
            ..AdmissionSettings::default()
        });
        assert!(off.admit(5).is_ok());
        off.observe(
            &Reading {
                lag: ms(10),
                ..at(5)
            },
            Instant::now(),
        );
        assert_eq!(off.shedding(), None);
    }

    #[test]
    fn bad_thresholds_are_named() {
        let err = AdmissionSettings {
            reopen_lag_ms: 300,
            ..AdmissionSettings::default()
        }
        .thresholds()
        .unwrap_err();
        assert!(
            err.to_string().contains("admission.reopen_lag_ms = 300"),
            "{err}"
        );
        let err = AdmissionSettings {
            max_connections: 10,
            reopen_connections: 10,
            ..AdmissionSettings::default()
        }
        .thresholds()
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("admission.reopen_connections = 10"),
            "{err}"
        );
    }
}
