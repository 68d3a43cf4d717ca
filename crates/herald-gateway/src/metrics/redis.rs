//! What the Redis backend reports (see `herald_redis::Observer`): call
//! times, errors and pub/sub traffic, plus the window admission control
//! reads its Redis latency from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Registry};

use super::registry::{counter, counter_vec, register, LATENCY_BUCKETS};

pub struct RedisMetrics {
    command_duration: HistogramVec,
    errors: IntCounterVec,
    pubsub_messages: IntCounter,
    resubscribes: IntCounter,
    /// Microseconds and count of the calls since admission's last sample.
    window_micros: AtomicU64,
    window_calls: AtomicU64,
}

impl RedisMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        RedisMetrics {
            command_duration: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "redis_command_duration_seconds",
                        "Redis calls (scripts and commands) from send to reply, by call",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["call"],
                )
                .unwrap(),
            ),
            errors: counter_vec(
                r,
                "redis_errors_total",
                "Redis calls that failed, by kind",
                &["kind"],
            ),
            pubsub_messages: counter(
                r,
                "pubsub_messages_total",
                "Messages received from Redis pub/sub",
            ),
            resubscribes: counter(
                r,
                "pubsub_resubscribes_total",
                "Times the subscriber reconnected and subscribed again",
            ),
            window_micros: AtomicU64::new(0),
            window_calls: AtomicU64::new(0),
        }
    }

    /// The mean time of the calls since the last time this was asked;
    /// `None` when there were none.
    pub(super) fn take_mean(&self) -> Option<Duration> {
        let calls = self.window_calls.swap(0, Ordering::Relaxed);
        let micros = self.window_micros.swap(0, Ordering::Relaxed);
        (calls > 0).then(|| Duration::from_micros(micros / calls))
    }
}

impl herald_redis::Observer for RedisMetrics {
    fn command(&self, script: &'static str, took: Duration) {
        self.command_duration
            .with_label_values(&[script])
            .observe(took.as_secs_f64());
        let micros = took.as_micros().min(u64::MAX as u128) as u64;
        self.window_micros.fetch_add(micros, Ordering::Relaxed);
        self.window_calls.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, kind: &'static str) {
        self.errors.with_label_values(&[kind]).inc();
    }

    fn pubsub_message(&self) {
        self.pubsub_messages.inc();
    }

    fn resubscribed(&self) {
        self.resubscribes.inc();
    }
}
