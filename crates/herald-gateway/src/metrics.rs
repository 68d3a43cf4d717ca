//! Prometheus metrics of one node, served at `GET /metrics`. Every series
//! is named `herald_…` and carries the const label `node`.
//!
//! The delivery path touches only atomics here: the per-codec gauges and
//! the counters are resolved once at start, and the latency histogram's
//! `observe` is lock-free. Label lookups (`with_label_values`) happen only
//! per connection, per close and per accepted message.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::Codec;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

mod admission;
mod redis;
mod registry;
mod workers;

pub use admission::AdmissionMetrics;
use admission::RebalanceMetrics;
pub use redis::RedisMetrics;
use registry::{counter, counter_vec, gauge, histogram, register};
use workers::ScheduleMetrics;
pub use workers::{JobMetrics, WebhookMetrics};

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
        let acts = counter_vec(
            r,
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
            connects: counter(r, "connects_total", "WebSocket connections accepted"),
            disconnects: counter_vec(
                r,
                "disconnects_total",
                "WebSocket connections ended, by reason and the close code sent (none: the client left first)",
                &["reason", "code"],
            ),
            handshake_refusals: counter_vec(
                r,
                "handshake_refusals_total",
                "WebSocket handshakes refused before the upgrade, by cause",
                &["cause"],
            ),
            accepted: counter_vec(
                r,
                "messages_accepted_total",
                "Messages stored (one per receiving stream), by entry point and category",
                &["entry", "category"],
            ),
            deliveries: counter(
                r,
                "deliveries_total",
                "Live message frames written to connections (catch-up reads excluded)",
            ),
            delivery_latency: histogram(
                r,
                "delivery_latency_seconds",
                "From a message's acceptance to its frame written to a socket",
            ),
            queue_high_water: gauge(
                r,
                "outbound_queue_high_water",
                "Most deliveries queued for one connection since the last scrape",
            ),
            slow_consumer_closes: counter(
                r,
                "slow_consumer_closes_total",
                "Connections closed because their outbound queue overflowed",
            ),
            stream_resets: counter(
                r,
                "stream_resets_total",
                "Clients told `reset`: the store's stream went back behind what they had (a Redis failover lost messages)",
            ),
            online_users: gauge(
                r,
                "presence_online_users",
                "Users online cluster-wide, as presence last said",
            ),
            presence_lapses: counter(
                r,
                "presence_lapses_total",
                "Times presence had given this node up for dead (its heartbeats lapsed) and it registered its connections again",
            ),
            ready: gauge(
                r,
                "ready",
                "1 while the node takes connections, 0 while draining",
            ),
            credential_reloads: counter_vec(
                r,
                "credential_reloads_total",
                "Reloads of token keys and API keys (SIGHUP), by result (ok, error: the old keys stay)",
                &["result"],
            ),
            acts,
            redis: Arc::new(RedisMetrics::new(r)),
            jobs: Arc::new(JobMetrics::new(r)),
            schedule: ScheduleMetrics::new(r),
            admission: AdmissionMetrics::new(r),
            rebalance: RebalanceMetrics::new(r),
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
            webhooks: Arc::new(WebhookMetrics::new(r)),
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
        self.redis.take_mean()
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
        self.schedule.round(round);
    }

    /// What one round of snooze wake-ups did.
    pub fn wake_round(&self, round: &herald_core::WakeRound) {
        self.schedule.wake_round(round);
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
        self.webhooks.set_backlog(backlog, in_flight);
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
