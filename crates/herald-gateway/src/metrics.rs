//! Prometheus metrics of one node, served at `GET /metrics`. Every series
//! is named `herald_…` and carries the const label `node`.
//!
//! The delivery path touches only atomics here: the per-codec gauges and
//! the counters are resolved once at start, and the latency histogram's
//! `observe` is lock-free. Label lookups (`with_label_values`) happen only
//! per connection, per close and per accepted message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::Codec;
use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Latency buckets from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

pub struct Metrics {
    pub registry: Registry,
    connections: [IntGauge; 2],
    /// The same connections by what carries them (`TransportKind`).
    transports: [IntGauge; 3],
    connects: IntCounter,
    disconnects: IntCounterVec,
    handshake_refusals: IntCounterVec,
    accepted: IntCounterVec,
    deliveries: IntCounter,
    delivery_latency: Histogram,
    queue_high_water: IntGauge,
    slow_consumer_closes: IntCounter,
    stream_resets: IntCounter,
    online_users: IntGauge,
    presence_lapses: IntCounter,
    ready: IntGauge,
    credential_reloads: IntCounterVec,
    /// Acts answered, by outcome ([`act_outcome`]).
    acts: IntCounterVec,
    redis: Arc<RedisMetrics>,
    jobs: Arc<JobMetrics>,
    schedule: ScheduleMetrics,
    admission: AdmissionMetrics,
    rebalance: RebalanceMetrics,
    /// The fan-out group's consumers and pending entries (Redis only).
    fanout_consumers: LateGauge,
    fanout_pending: LateGauge,
    /// Netfilter's conntrack table (hosts where it is loaded).
    conntrack_entries: LateGauge,
    conntrack_limit: LateGauge,
    webhooks: Arc<WebhookMetrics>,
}

/// A gauge registered when first set: a series this node cannot read (the
/// memory backend has no fan-out group) stays absent instead of reading 0.
struct LateGauge {
    name: &'static str,
    help: &'static str,
    gauge: std::sync::OnceLock<IntGauge>,
}

impl LateGauge {
    fn new(name: &'static str, help: &'static str) -> Self {
        LateGauge {
            name,
            help,
            gauge: std::sync::OnceLock::new(),
        }
    }

    fn set(&self, registry: &Registry, value: u64) {
        self.gauge
            .get_or_init(|| register(registry, IntGauge::new(self.name, self.help).unwrap()))
            .set(value.min(i64::MAX as u64) as i64);
    }
}

/// What rebalancing reports (`crate::rebalance`).
struct RebalanceMetrics {
    moved: IntCounter,
    rounds: IntCounter,
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
    fn new(r: &Registry) -> Self {
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

/// What this node's fan-out worker reports (see `herald_core::fanout::JobObserver`).
pub struct JobMetrics {
    running: IntGauge,
    ended: IntCounterVec,
    messages: IntCounter,
    backlog: IntGauge,
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

/// What this node's scheduler did (scheduled sends).
struct ScheduleMetrics {
    scheduled: IntCounter,
    ended: IntCounterVec,
    lateness: Histogram,
    pending: IntGauge,
    woken: IntCounter,
    wake_retries: IntCounter,
    snoozing: IntGauge,
}

/// What the Redis backend reports (see `herald_redis::Observer`).
pub struct RedisMetrics {
    command_duration: HistogramVec,
    errors: IntCounterVec,
    pubsub_messages: IntCounter,
    resubscribes: IntCounter,
    /// Microseconds and count of the calls since admission's last sample.
    window_micros: AtomicU64,
    window_calls: AtomicU64,
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

/// Every outcome of an act, as `herald_acts_total` labels it.
const ACT_OUTCOMES: [&str; 5] = ["acted", "already_acted", "invalid", "not_found", "error"];

/// The `outcome` label of an act's result: `invalid` is an unknown action,
/// a message without buttons or a bad user id; `error` anything else (the
/// store unavailable, the read state changing under every try).
fn act_outcome<T>(outcome: &herald_core::Result<T>) -> &'static str {
    use herald_core::CoreError;
    match outcome {
        Ok(_) => "acted",
        Err(CoreError::AlreadyActed(_)) => "already_acted",
        Err(CoreError::Invalid(_)) => "invalid",
        Err(CoreError::NotFound(_)) => "not_found",
        Err(_) => "error",
    }
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl Metrics {
    pub fn new(node_id: &str) -> Self {
        let registry = Registry::new_custom(
            Some("herald".into()),
            Some([("node".into(), node_id.into())].into()),
        )
        .expect("valid registry");
        let r = &registry;
        let connections = register(
            r,
            IntGaugeVec::new(
                Opts::new("connections", "WebSocket connections open now, by codec"),
                &["codec"],
            )
            .unwrap(),
        );
        let transports = register(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "transport_connections",
                    "Client connections open now, by transport (ws, sse, socketio)",
                ),
                &["transport"],
            )
            .unwrap(),
        );
        let counter = |name: &str, help: &str| register(r, IntCounter::new(name, help).unwrap());
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                r,
                IntCounterVec::new(Opts::new(name, help), labels).unwrap(),
            )
        };
        let gauge = |name: &str, help: &str| register(r, IntGauge::new(name, help).unwrap());
        let redis = Arc::new(RedisMetrics {
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
                "redis_errors_total",
                "Redis calls that failed, by kind",
                &["kind"],
            ),
            pubsub_messages: counter(
                "pubsub_messages_total",
                "Messages received from Redis pub/sub",
            ),
            resubscribes: counter(
                "pubsub_resubscribes_total",
                "Times the subscriber reconnected and subscribed again",
            ),
            window_micros: AtomicU64::new(0),
            window_calls: AtomicU64::new(0),
        });
        let admission = AdmissionMetrics::new(r);
        let rebalance = RebalanceMetrics {
            moved: counter(
                "rebalance_moved_total",
                "Connections this node asked to reconnect elsewhere because it held more than its share",
            ),
            rounds: counter(
                "rebalance_rounds_total",
                "Rounds in which this node moved connections (each down to the cluster's mean)",
            ),
        };
        let jobs = Arc::new(JobMetrics {
            running: gauge(
                "fanout_jobs_running",
                "Fan-out jobs this node's worker is working on",
            ),
            ended: counter_vec(
                "fanout_jobs_total",
                "Fan-out jobs this node's worker ended, by outcome (done, failed, taken_over by another node)",
                &["outcome"],
            ),
            messages: counter(
                "fanout_messages_total",
                "Inbox messages appended by this node's fan-out worker",
            ),
            backlog: gauge(
                "fanout_jobs_backlog",
                "Fan-out jobs queued or running on all nodes together, as last read",
            ),
        });
        let schedule = ScheduleMetrics {
            scheduled: counter(
                "scheduled_accepted_total",
                "Scheduled sends accepted (deliver_at) by this node",
            ),
            ended: counter_vec(
                "scheduled_delivered_total",
                "Scheduled sends this node's scheduler handled, by outcome (delivered, refused by the store, retried after their lease)",
                &["outcome"],
            ),
            lateness: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "scheduled_lateness_seconds",
                        "From a scheduled send's deliver_at to its appends done",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .unwrap(),
            ),
            pending: gauge(
                "scheduled_pending",
                "Scheduled sends not delivered yet on all nodes together, as last read",
            ),
            woken: counter(
                "snooze_woken_total",
                "Snoozed messages this node's scheduler brought back",
            ),
            wake_retries: counter(
                "snooze_wake_retries_total",
                "Users whose wake-up failed on this node (retried after the lease)",
            ),
            snoozing: gauge(
                "snooze_users",
                "Users with a snooze wake-up to come, all nodes together, as last read",
            ),
        };
        let webhooks = Arc::new(WebhookMetrics {
            events: counter_vec(
                "webhook_events_total",
                "Webhook events this node moved, by outcome (created, dropped: read or not wanted by their due time, deferred: quiet hours, delivered, retried, postponed: not tried, the circuit breaker open, dead, revived: a dead one sent again)",
                &["outcome"],
            ),
            attempts: counter_vec(
                "webhook_attempts_total",
                "Webhook tries this node made, by result (2xx, 3xx, 4xx, 5xx, timeout, error)",
                &["result"],
            ),
            latency: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "webhook_delivery_seconds",
                        "One webhook try, from its request sent to its response (or timeout)",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .unwrap(),
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
                "webhook_in_flight",
                "Webhook events this node works on now (capped by webhooks.max_in_flight)",
            ),
            dead: counter_vec(
                "webhook_dead_total",
                "Webhook events this node saw die, by reason (gave_up: every try failed for webhooks.give_up_after_secs, backlog_full: created dead, webhooks.max_pending were pending)",
                &["reason"],
            ),
            breaker_open: gauge(
                "webhook_breaker_open",
                "1 while this node's webhook circuit breaker is open (webhooks.breaker_failures failed tries in a row; one probe per webhooks.breaker_probe_secs), else 0",
            ),
            breaker_opens: counter(
                "webhook_breaker_opens_total",
                "Times this node's webhook circuit breaker opened",
            ),
        });
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
        let acts = counter_vec(
            "acts_total",
            "Action-button presses answered (WebSocket act and POST /v1/users/{id}/act), by outcome (acted, already_acted: an act came first, invalid: no such action, not_found, error: the store was unavailable)",
            &["outcome"],
        );
        // At 0 from the start: a rate reads 0 rather than nothing.
        for outcome in ACT_OUTCOMES {
            acts.with_label_values(&[outcome]);
        }
        let metrics = Metrics {
            connections: Codec::ALL.map(|c| connections.with_label_values(&[codec_label(c)])),
            transports: TransportKind::ALL.map(|t| transports.with_label_values(&[t.label()])),
            connects: counter("connects_total", "WebSocket connections accepted"),
            disconnects: counter_vec(
                "disconnects_total",
                "WebSocket connections ended, by reason and the close code sent (none: the client left first)",
                &["reason", "code"],
            ),
            handshake_refusals: counter_vec(
                "handshake_refusals_total",
                "WebSocket handshakes refused before the upgrade, by cause",
                &["cause"],
            ),
            accepted: counter_vec(
                "messages_accepted_total",
                "Messages stored (one per receiving stream), by entry point and category",
                &["entry", "category"],
            ),
            deliveries: counter(
                "deliveries_total",
                "Live message frames written to connections (catch-up reads excluded)",
            ),
            delivery_latency: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "delivery_latency_seconds",
                        "From a message's acceptance to its frame written to a socket",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .unwrap(),
            ),
            queue_high_water: gauge(
                "outbound_queue_high_water",
                "Most deliveries queued for one connection since the last scrape",
            ),
            slow_consumer_closes: counter(
                "slow_consumer_closes_total",
                "Connections closed because their outbound queue overflowed",
            ),
            stream_resets: counter(
                "stream_resets_total",
                "Clients told `reset`: the store's stream went back behind what they had (a Redis failover lost messages)",
            ),
            online_users: gauge(
                "presence_online_users",
                "Users online cluster-wide, as presence last said",
            ),
            presence_lapses: counter(
                "presence_lapses_total",
                "Times presence had given this node up for dead (its heartbeats lapsed) and it registered its connections again",
            ),
            ready: gauge(
                "ready",
                "1 while the node takes connections, 0 while draining",
            ),
            credential_reloads: counter_vec(
                "credential_reloads_total",
                "Reloads of token keys and API keys (SIGHUP), by result (ok, error: the old keys stay)",
                &["result"],
            ),
            acts,
            redis,
            jobs,
            schedule,
            admission,
            rebalance,
            fanout_consumers: LateGauge::new(
                "fanout_consumers",
                "Consumers in the fan-out job stream's group (one per node that took a job, dead nodes' until their jobs are taken over), as last read",
            ),
            conntrack_entries: LateGauge::new(
                "conntrack_entries",
                "Entries in netfilter's connection-tracking table of this node's network namespace (nf_conntrack_count), as last read; absent where conntrack is not loaded",
            ),
            conntrack_limit: LateGauge::new(
                "conntrack_limit",
                "Size of that table (nf_conntrack_max): past it new connections are dropped",
            ),
            fanout_pending: LateGauge::new(
                "fanout_pending",
                "Fan-out job entries handed to a consumer and not finished, on all nodes together, as last read",
            ),
            webhooks,
            registry,
        };
        let build = register(
            &metrics.registry,
            IntGaugeVec::new(
                Opts::new(
                    "build_info",
                    "Version and git commit of this build; always 1",
                ),
                &["version", "commit"],
            )
            .unwrap(),
        );
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("HERALD_GIT_COMMIT")])
            .set(1);
        metrics.ready.set(1);
        #[cfg(target_os = "linux")]
        {
            // The registry's prefix makes these `herald_process_…`.
            let process = prometheus::process_collector::ProcessCollector::for_self();
            metrics
                .registry
                .register(Box::new(process))
                .expect("process collector registered once");
        }
        metrics
    }

    /// What the Redis backend reports to.
    pub fn redis_observer(&self) -> Arc<RedisMetrics> {
        self.redis.clone()
    }

    /// What admission control reports to.
    pub fn admission(&self) -> AdmissionMetrics {
        self.admission.clone()
    }

    /// A rebalancing round asked `moved` connections to move.
    pub fn rebalanced(&self, moved: usize) {
        self.rebalance.rounds.inc();
        self.rebalance.moved.inc_by(moved as u64);
    }

    /// The mean time of the Redis calls since the last time this was
    /// asked; `None` when there were none.
    pub fn take_redis_mean(&self) -> Option<Duration> {
        let calls = self.redis.window_calls.swap(0, Ordering::Relaxed);
        let micros = self.redis.window_micros.swap(0, Ordering::Relaxed);
        (calls > 0).then(|| Duration::from_micros(micros / calls))
    }

    pub fn connection_opened(&self, codec: Codec, transport: TransportKind) {
        self.connections[codec as usize].inc();
        self.transports[transport as usize].inc();
        self.connects.inc();
    }

    pub fn connection_closed(
        &self,
        codec: Codec,
        transport: TransportKind,
        reason: &str,
        code: Option<u16>,
    ) {
        self.connections[codec as usize].dec();
        self.transports[transport as usize].dec();
        let code = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        self.disconnects.with_label_values(&[reason, &code]).inc();
        if reason == "slow_consumer" {
            self.slow_consumer_closes.inc();
        }
    }

    /// A client was told `reset` (see `connections/connection/rewind.rs`).
    pub fn stream_reset(&self) {
        self.stream_resets.inc();
    }

    pub fn handshake_refused(&self, cause: &str) {
        self.handshake_refusals.with_label_values(&[cause]).inc();
    }

    /// Connections that have not finished closing.
    pub fn open_connections(&self) -> i64 {
        self.connections.iter().map(IntGauge::get).sum()
    }

    /// One message frame written live, `latency` after it was accepted.
    pub fn delivered(&self, latency: Duration) {
        self.deliveries.inc();
        self.delivery_latency.observe(latency.as_secs_f64());
    }

    /// An act answered (API or WebSocket), counted by its outcome.
    pub fn act<T>(&self, outcome: &herald_core::Result<T>) {
        self.acts.with_label_values(&[act_outcome(outcome)]).inc();
    }

    pub fn accepted(&self, entry: &str, category: &str) {
        self.accepted.with_label_values(&[entry, category]).inc();
    }

    /// Presence had given this node up for dead.
    pub fn presence_lapsed(&self) {
        self.presence_lapses.inc();
    }

    pub fn set_online_users(&self, users: u64) {
        self.online_users.set(users as i64);
    }

    /// The fan-out worker's observer.
    pub fn job_observer(&self) -> Arc<JobMetrics> {
        self.jobs.clone()
    }

    pub fn set_job_backlog(&self, jobs: u64) {
        self.jobs.backlog.set(jobs as i64);
    }

    /// Netfilter's conntrack table, as last read.
    pub fn set_conntrack(&self, entries: u64, limit: u64) {
        self.conntrack_entries.set(&self.registry, entries);
        self.conntrack_limit.set(&self.registry, limit);
    }

    /// The fan-out group's consumers and pending entries, as last read.
    pub fn set_fanout_workers(&self, counts: herald_core::backend::WorkerCounts) {
        self.fanout_consumers.set(&self.registry, counts.workers);
        self.fanout_pending.set(&self.registry, counts.pending);
    }

    pub fn scheduled(&self) {
        self.schedule.scheduled.inc();
    }

    /// What one round of this node's scheduler did.
    pub fn schedule_round(&self, round: &herald_core::Round) {
        let ended = &self.schedule.ended;
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
            self.schedule.lateness.observe(*ms as f64 / 1000.0);
        }
    }

    /// What one round of snooze wake-ups did.
    pub fn wake_round(&self, round: &herald_core::WakeRound) {
        self.schedule.woken.inc_by(round.woken as u64);
        self.schedule.wake_retries.inc_by(round.retried as u64);
    }

    pub fn set_snoozing(&self, users: u64) {
        self.schedule.snoozing.set(users as i64);
    }

    pub fn set_scheduled_pending(&self, pending: u64) {
        self.schedule.pending.set(pending as i64);
    }

    /// The webhook worker's observer.
    pub fn webhook_observer(&self) -> Arc<WebhookMetrics> {
        self.webhooks.clone()
    }

    pub fn set_webhook_backlog(&self, backlog: &herald_core::WebhookBacklog, in_flight: usize) {
        let gauges = &self.webhooks.backlog;
        gauges
            .with_label_values(&["armed"])
            .set(backlog.armed as i64);
        gauges
            .with_label_values(&["pending"])
            .set(backlog.pending as i64);
        gauges.with_label_values(&["dead"]).set(backlog.dead as i64);
        self.webhooks.in_flight.set(in_flight as i64);
    }

    pub fn credentials_reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.credential_reloads.with_label_values(&[result]).inc();
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(ready as i64);
    }

    /// The text exposition format. `queue_high_water` is the hub's
    /// high-water mark since the previous scrape.
    pub fn render(&self, queue_high_water: usize) -> String {
        self.queue_high_water.set(queue_high_water as i64);
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

/// What carries a client connection's frames: the label of
/// `herald_transport_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Ws = 0,
    Sse = 1,
    /// The Socket.IO endpoint (`connections/socketio.rs`), WebSocket or
    /// long-polling alike.
    SocketIo = 2,
}

impl TransportKind {
    pub const ALL: [TransportKind; 3] = [
        TransportKind::Ws,
        TransportKind::Sse,
        TransportKind::SocketIo,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TransportKind::Ws => "ws",
            TransportKind::Sse => "sse",
            TransportKind::SocketIo => "socketio",
        }
    }
}

fn codec_label(codec: Codec) -> &'static str {
    match codec {
        Codec::Json => "json",
        Codec::MsgPack => "msgpack",
    }
}
