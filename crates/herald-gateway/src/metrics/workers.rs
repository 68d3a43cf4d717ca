//! What the node's background workers report: the fan-out jobs, the
//! scheduler (scheduled sends and snooze wake-ups) and the webhooks.

use std::time::Duration;

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::registry::{counter, counter_vec, gauge, histogram, register};

/// What this node's fan-out worker reports (see `herald_core::fanout::JobObserver`).
pub struct JobMetrics {
    running: IntGauge,
    ended: IntCounterVec,
    messages: IntCounter,
    pub(super) backlog: IntGauge,
}

impl JobMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        JobMetrics {
            running: gauge(
                r,
                "fanout_jobs_running",
                "Fan-out jobs this node's worker is working on",
            ),
            ended: counter_vec(
                r,
                "fanout_jobs_total",
                "Fan-out jobs this node's worker ended, by outcome (done, failed, taken_over by another node)",
                &["outcome"],
            ),
            messages: counter(
                r,
                "fanout_messages_total",
                "Inbox messages appended by this node's fan-out worker",
            ),
            backlog: gauge(
                r,
                "fanout_jobs_backlog",
                "Fan-out jobs queued or running on all nodes together, as last read",
            ),
        }
    }
}

impl herald_core::fanout::JobObserver for JobMetrics {
    fn started(&self) {
        self.running.inc();
    }

    fn ended(&self, state: Option<herald_core::JobState>) {
        self.running.dec();
        let outcome = state.map_or("taken_over", herald_core::JobState::as_str);
        self.ended.with_label_values(&[outcome]).inc();
    }

    fn appended(&self, messages: u64) {
        self.messages.inc_by(messages);
    }
}

/// What this node's scheduler did (scheduled sends and snooze wake-ups).
pub(super) struct ScheduleMetrics {
    pub(super) scheduled: IntCounter,
    ended: IntCounterVec,
    lateness: Histogram,
    pub(super) pending: IntGauge,
    woken: IntCounter,
    wake_retries: IntCounter,
    pub(super) snoozing: IntGauge,
}

impl ScheduleMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        ScheduleMetrics {
            scheduled: counter(
                r,
                "scheduled_accepted_total",
                "Scheduled sends accepted (deliver_at) by this node",
            ),
            ended: counter_vec(
                r,
                "scheduled_delivered_total",
                "Scheduled sends this node's scheduler handled, by outcome (delivered, refused by the store, retried after their lease)",
                &["outcome"],
            ),
            lateness: histogram(
                r,
                "scheduled_lateness_seconds",
                "From a scheduled send's deliver_at to its appends done",
            ),
            pending: gauge(
                r,
                "scheduled_pending",
                "Scheduled sends not delivered yet on all nodes together, as last read",
            ),
            woken: counter(
                r,
                "snooze_woken_total",
                "Snoozed messages this node's scheduler brought back",
            ),
            wake_retries: counter(
                r,
                "snooze_wake_retries_total",
                "Users whose wake-up failed on this node (retried after the lease)",
            ),
            snoozing: gauge(
                r,
                "snooze_users",
                "Users with a snooze wake-up to come, all nodes together, as last read",
            ),
        }
    }

    pub(super) fn round(&self, round: &herald_core::Round) {
        let ended = &self.ended;
        ended
            .with_label_values(&["delivered"])
            .inc_by(round.delivered as u64);
        ended
            .with_label_values(&["refused"])
            .inc_by(round.refused as u64);
        ended
            .with_label_values(&["retried"])
            .inc_by(round.retried as u64);
        for ms in &round.lateness_ms {
            self.lateness.observe(*ms as f64 / 1000.0);
        }
    }

    pub(super) fn wake_round(&self, round: &herald_core::WakeRound) {
        self.woken.inc_by(round.woken as u64);
        self.wake_retries.inc_by(round.retried as u64);
    }
}

/// What this node's webhook worker reports (see `herald_core::WebhookObserver`).
pub struct WebhookMetrics {
    events: IntCounterVec,
    attempts: IntCounterVec,
    latency: Histogram,
    backlog: IntGaugeVec,
    in_flight: IntGauge,
    dead: IntCounterVec,
    breaker_open: IntGauge,
    breaker_opens: IntCounter,
}

impl WebhookMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        let webhooks = WebhookMetrics {
            events: counter_vec(
                r,
                "webhook_events_total",
                "Webhook events this node moved, by outcome (created, dropped: read or not wanted by their due time, deferred: quiet hours, delivered, retried, postponed: not tried, the circuit breaker open, dead, revived: a dead one sent again)",
                &["outcome"],
            ),
            attempts: counter_vec(
                r,
                "webhook_attempts_total",
                "Webhook tries this node made, by result (2xx, 3xx, 4xx, 5xx, timeout, error)",
                &["result"],
            ),
            latency: histogram(
                r,
                "webhook_delivery_seconds",
                "One webhook try, from its request sent to its response (or timeout)",
            ),
            backlog: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "webhook_backlog",
                        "Webhook events on all nodes together, as last read, by state (armed: waiting for their due time, pending: created and not delivered yet, dead)",
                    ),
                    &["state"],
                )
                .unwrap(),
            ),
            in_flight: gauge(
                r,
                "webhook_in_flight",
                "Webhook events this node works on now (capped by webhooks.max_in_flight)",
            ),
            dead: counter_vec(
                r,
                "webhook_dead_total",
                "Webhook events this node saw die, by reason (gave_up: every try failed for webhooks.give_up_after_secs, backlog_full: created dead, webhooks.max_pending were pending)",
                &["reason"],
            ),
            breaker_open: gauge(
                r,
                "webhook_breaker_open",
                "1 while this node's webhook circuit breaker is open (webhooks.breaker_failures failed tries in a row; one probe per webhooks.breaker_probe_secs), else 0",
            ),
            breaker_opens: counter(
                r,
                "webhook_breaker_opens_total",
                "Times this node's webhook circuit breaker opened",
            ),
        };
        // Every series exists from the start (at 0), webhooks on or not, so
        // the dashboard and the alert read 0 rather than nothing.
        for outcome in [
            "created",
            "dropped",
            "deferred",
            "delivered",
            "retried",
            "postponed",
            "dead",
            "revived",
        ] {
            webhooks.events.with_label_values(&[outcome]);
        }
        for reason in ["gave_up", "backlog_full"] {
            webhooks.dead.with_label_values(&[reason]);
        }
        for result in ["2xx", "3xx", "4xx", "5xx", "timeout", "error"] {
            webhooks.attempts.with_label_values(&[result]);
        }
        for state in ["armed", "pending", "dead"] {
            webhooks.backlog.with_label_values(&[state]);
        }
        webhooks
    }

    pub(super) fn set_backlog(&self, backlog: &herald_core::WebhookBacklog, in_flight: usize) {
        let gauges = &self.backlog;
        gauges
            .with_label_values(&["armed"])
            .set(backlog.armed as i64);
        gauges
            .with_label_values(&["pending"])
            .set(backlog.pending as i64);
        gauges.with_label_values(&["dead"]).set(backlog.dead as i64);
        self.in_flight.set(in_flight as i64);
    }
}

impl herald_core::WebhookObserver for WebhookMetrics {
    fn event(&self, outcome: &'static str) {
        self.events.with_label_values(&[outcome]).inc();
    }

    fn attempt(&self, outcome: &herald_core::PostOutcome, took: Duration) {
        self.attempts.with_label_values(&[outcome.class()]).inc();
        self.latency.observe(took.as_secs_f64());
    }

    fn dead(&self, reason: &'static str) {
        self.dead.with_label_values(&[reason]).inc();
    }

    fn breaker(&self, open: bool) {
        self.breaker_open.set(open as i64);
        if open {
            self.breaker_opens.inc();
        }
    }
}
