//! A gateway node: wires the backend, the hub, auth and metrics together.
//! This is the one place that knows which backend implementation runs.

mod heartbeat;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use herald_core::memory::{
    MemoryBlocklist, MemoryIdempotency, MemoryJobs, MemoryTimers, MemoryTopics, MemoryWebhooks,
};
use herald_core::memory::{
    MemoryBroker, MemoryBus, MemoryPreferences, MemoryPresence, MemoryStore,
};
use herald_core::{
    Blocklist, Broker, Conversations, FanOut, Hub, Idempotency, Inbox, JobQueue, MessageLimits,
    PacedPresence, PreferenceStore, Presence, Scheduler, Sender, Store, Timers, Topics,
    UserChannels, UserData, UserDataParts, UserPreferences, WebhookQueue, Webhooks,
};

use crate::admission::Gate;
use crate::api_keys::{ApiKeys, CurrentKeys};
use crate::auth::{Authenticator, SessionResolver};
use crate::limits::RequestLimiter;
use crate::metrics::Metrics;
use crate::settings::{BackendKind, Settings};

/// How often a paced offer to connections (a drain, registering again)
/// hands out its next batch.
pub(crate) const PACING_STEP: Duration = Duration::from_millis(100);

pub struct Node {
    pub id: String,
    pub settings: Settings,
    pub hub: Arc<Hub>,
    pub store: Arc<dyn Store>,
    pub presence: Arc<dyn Presence>,
    /// Validates and stores messages, for the API and the WebSocket alike.
    pub sender: Sender,
    /// Marks, counts and history, for the API and the WebSocket alike.
    pub inbox: Inbox,
    /// Who subscribed to which topic.
    pub topics: Arc<dyn Topics>,
    /// Who blocked whom.
    pub blocklist: Arc<dyn Blocklist>,
    /// Private conversations and receipts.
    pub conversations: Conversations,
    /// Users' preferences, for the API and the connections alike.
    pub preferences: UserPreferences,
    /// A user's data as a whole: export and erasure (admin routes).
    pub user_data: UserData,
    /// Publishes to topics; its worker runs in `fanout_worker`.
    pub fanout: Arc<FanOut>,
    fanout_worker: Option<tokio::task::AbortHandle>,
    /// Scheduled sends; this node's rounds run in `scheduler_task`.
    pub scheduler: Scheduler,
    scheduler_task: std::sync::OnceLock<tokio::task::AbortHandle>,
    /// The unread fallback webhooks, when `webhooks.url` is set; this
    /// node's worker runs in `webhook_worker`.
    pub webhooks: Option<Arc<Webhooks>>,
    webhook_worker: Option<tokio::task::AbortHandle>,
    /// User credentials and API keys; swapped whole by a reload (SIGHUP).
    auth: ArcSwap<Authenticator>,
    api_keys: Arc<CurrentKeys>,
    sessions: Option<Arc<dyn SessionResolver>>,
    pub metrics: Metrics,
    /// Requests per second per user (`limits.requests_per_sec`).
    pub limiter: RequestLimiter,
    /// Whether the node takes new connections (`[admission]`); sampled in
    /// `admission::sample`.
    pub admission: Gate,
    /// Shut while this node moves connections to others (`rebalance`).
    pub rebalance_door: crate::rebalance::Door,
    /// Kept alive for as long as the node runs.
    _broker: Arc<dyn Broker>,
    _channels: Arc<UserChannels>,
    /// The Redis connections, when that backend runs.
    redis: Option<Arc<herald_redis::RedisBackend>>,
    shutting_down: AtomicBool,
}

/// The three backend parts plus the optional session store.
struct Backend {
    store: Arc<dyn Store>,
    presence: Arc<dyn Presence>,
    broker: Arc<dyn Broker>,
    idempotency: Arc<dyn Idempotency>,
    topics: Arc<dyn Topics>,
    blocklist: Arc<dyn Blocklist>,
    preferences: Arc<dyn PreferenceStore>,
    jobs: Arc<dyn JobQueue>,
    timers: Arc<dyn Timers>,
    webhooks: Arc<dyn WebhookQueue>,
    sessions: Option<Arc<dyn SessionResolver>>,
    redis: Option<Arc<herald_redis::RedisBackend>>,
}

impl Node {
    pub async fn start(settings: Settings) -> anyhow::Result<Arc<Node>> {
        let id = if settings.node.id.is_empty() {
            default_node_id()
        } else {
            settings.node.id.clone()
        };
        herald_core::validate_user_id(&id).map_err(|e| anyhow::anyhow!("node.id: {e}"))?;
        let hub = Hub::new();
        let metrics = Metrics::new(&id);
        if settings.backend == BackendKind::Redis
            && !herald_redis::set_observer(metrics.redis_observer())
        {
            tracing::debug!("a Redis observer was set before: this node's Redis metrics go there");
        }
        let backend = match settings.backend {
            BackendKind::Memory => memory_backend(&settings, hub.clone()),
            BackendKind::Redis => redis_backend(&settings, &id, hub.clone()).await?,
        };
        let channels = UserChannels::new(
            backend.broker.clone(),
            Duration::from_millis(settings.node.subscription_linger_ms),
        );
        hub.bind(channels.clone());
        let auth = Authenticator::new(&settings.auth, backend.sessions.clone())?;
        let api_keys = ApiKeys::new(&settings.api)?;
        let categories = settings.categories()?;
        let window = Duration::from_secs(settings.messages.idempotency_window_secs);
        let webhook_settings = settings.webhooks.core()?;
        let mut fanout = FanOut::new(
            backend.jobs,
            backend.store.clone(),
            backend.idempotency.clone(),
            MessageLimits::default(),
            categories.clone(),
            window,
            settings.fanout.core()?,
        )
        .with_observer(metrics.job_observer())
        .with_presence(backend.presence.clone());
        if webhook_settings.is_some() {
            fanout = fanout.with_fallback(backend.webhooks.clone());
        }
        let fanout = Arc::new(fanout);
        let fanout_worker = settings
            .fanout
            .worker
            .then(|| tokio::spawn(fanout.clone().run_worker(id.clone())).abort_handle());
        let mut sender = Sender::new(
            backend.store.clone(),
            backend.idempotency,
            backend.blocklist.clone(),
            backend.timers.clone(),
            MessageLimits::default(),
            categories.clone(),
            window,
        );
        let preference_store = backend.preferences.clone();
        let preferences = UserPreferences::new(backend.preferences, categories.clone());
        let mut inbox =
            Inbox::new(backend.store.clone(), categories).with_wakes(backend.timers.clone());
        let webhook_queue = backend.webhooks.clone();
        let webhooks = match webhook_settings {
            Some(core) => {
                sender = sender.with_fallback(backend.webhooks.clone());
                inbox = inbox.with_action_webhooks(backend.webhooks.clone());
                let poster = crate::webhooks::HttpPoster::new(
                    &settings.webhooks.url,
                    Duration::from_millis(settings.webhooks.timeout_ms),
                )?;
                Some(Arc::new(
                    Webhooks::new(
                        backend.webhooks,
                        backend.store.clone(),
                        preferences.clone(),
                        Arc::new(poster),
                        core,
                    )
                    .with_observer(metrics.webhook_observer()),
                ))
            }
            None => None,
        };
        let webhook_worker = webhooks
            .as_ref()
            .filter(|_| settings.webhooks.worker)
            .map(|w| tokio::spawn(w.clone().run_worker()).abort_handle());
        let timers = backend.timers;
        let scheduler = Scheduler::new(timers.clone(), settings.schedule.core()?);
        let admission = Gate::new(settings.admission.thresholds()?, metrics.admission());
        settings.rebalancing()?;
        let node_settings = settings.node.clone();
        // Adds and removes wait their turn here rather than time out in
        // the backend's queue (a mass teardown, registering again).
        let presence: Arc<dyn Presence> = Arc::new(PacedPresence::new(
            backend.presence,
            node_settings.presence_in_flight,
        ));
        let user_data = UserData::new(
            UserDataParts {
                store: backend.store.clone(),
                presence: presence.clone(),
                topics: backend.topics.clone(),
                blocklist: backend.blocklist.clone(),
                preferences: preference_store,
                timers: timers.clone(),
                webhooks: webhook_queue,
            },
            preferences.clone(),
        );
        let node = Arc::new(Node {
            limiter: RequestLimiter::new(&settings.limits),
            admission,
            rebalance_door: crate::rebalance::Door::default(),
            metrics,
            id,
            settings,
            hub,
            sender,
            preferences,
            webhooks,
            webhook_worker,
            inbox,
            conversations: Conversations::new(backend.store.clone()),
            topics: backend.topics,
            blocklist: backend.blocklist,
            fanout,
            fanout_worker,
            scheduler,
            scheduler_task: std::sync::OnceLock::new(),
            store: backend.store,
            presence,
            user_data,
            auth: ArcSwap::from_pointee(auth),
            api_keys: Arc::new(ArcSwap::from_pointee(api_keys)),
            sessions: backend.sessions,
            _broker: backend.broker,
            _channels: channels,
            redis: backend.redis,
            shutting_down: AtomicBool::new(false),
        });
        heartbeat::spawn(Arc::downgrade(&node), tokio::runtime::Handle::current())?;
        tokio::spawn(housekeeping_loop(Arc::downgrade(&node)));
        tokio::spawn(crate::admission::sample(Arc::downgrade(&node)));
        tokio::spawn(crate::rebalance::run(Arc::downgrade(&node)));
        if node.settings.schedule.worker {
            let task = tokio::spawn(scheduler_loop(Arc::downgrade(&node))).abort_handle();
            let _ = node.scheduler_task.set(task);
        }
        Ok(node)
    }

    /// Who users are: tokens and session cookies.
    pub fn auth(&self) -> Arc<Authenticator> {
        self.auth.load_full()
    }

    /// The server API's keys and their scopes, as the last reload left
    /// them.
    pub fn api_keys(&self) -> Arc<CurrentKeys> {
        self.api_keys.clone()
    }

    /// Takes new token keys, audience, issuer and API keys from `settings`
    /// (SIGHUP), all or nothing: a bad setting keeps the old ones. Open
    /// connections are not affected.
    pub fn reload_credentials(&self, settings: &Settings) -> anyhow::Result<()> {
        let auth = Authenticator::new(&settings.auth, self.sessions.clone())?;
        let api_keys = ApiKeys::new(&settings.api)?;
        self.auth.store(Arc::new(auth));
        self.api_keys.store(Arc::new(api_keys));
        Ok(())
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// The graceful drain: readiness turns false and new upgrades get 503
    /// at once; then every connection, in batches spread over
    /// `drain.window_secs`, answers what it has pending, gets a `reconnect`
    /// frame with a jittered delay and closes with 1001 (leaving presence).
    /// Returns when all are gone, or a few seconds after the window.
    pub async fn drain(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.metrics.set_ready(false);
        let window = Duration::from_secs(self.settings.drain.window_secs);
        let conns = self.hub.connections();
        tracing::info!(connections = conns.len(), ?window, "draining");
        let steps = (window.as_millis() / PACING_STEP.as_millis()).max(1) as usize;
        let per_step = conns.len().div_ceil(steps);
        let max_delay = self.settings.drain.max_reconnect_delay_ms.max(1);
        self.offer_in_steps(&conns, per_step, |_| herald_core::ConnEvent::Drain {
            after_ms: rand::random_range(0..max_delay),
        })
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.metrics.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Whatever connected meanwhile or did not leave: close it now.
        self.hub.close_all();
    }

    /// Offers each of `conns` the event `event` makes for it, `per_step` of
    /// them every [`PACING_STEP`], so that what each connection does then
    /// (reconnect elsewhere, register in presence again) is spread out.
    pub(crate) async fn offer_in_steps(
        &self,
        conns: &[(String, herald_core::ConnHandle)],
        per_step: usize,
        event: impl Fn(&herald_core::ConnHandle) -> herald_core::ConnEvent,
    ) {
        let mut tick = tokio::time::interval(PACING_STEP);
        for batch in conns.chunks(per_step.max(1)) {
            tick.tick().await;
            for (user, conn) in batch {
                self.hub.offer_to(user, conn, event(conn));
            }
        }
    }

    /// Closes backend connections (after the connections have ended). The
    /// fan-out worker stops first: a job it held is taken over by another
    /// node once the claim timeout passes.
    pub async fn stop_backend(&self) {
        if let Some(worker) = &self.fanout_worker {
            worker.abort();
        }
        if let Some(worker) = &self.webhook_worker {
            worker.abort();
        }
        if let Some(task) = self.scheduler_task.get() {
            task.abort();
        }
        if let Some(redis) = &self.redis {
            redis.shutdown().await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(worker) = &self.fanout_worker {
            worker.abort();
        }
        if let Some(worker) = &self.webhook_worker {
            worker.abort();
        }
        if let Some(task) = self.scheduler_task.get() {
            task.abort();
        }
    }
}

fn memory_backend(settings: &Settings, hub: Arc<Hub>) -> Backend {
    let bus = MemoryBus::new();
    // The store checks the block list on each private message's append.
    let blocklist = Arc::new(MemoryBlocklist::default());
    let topics = Arc::new(MemoryTopics::default());
    // The store reads the preferences on each inbox append.
    let preferences = Arc::new(MemoryPreferences::new(bus.clone()));
    Backend {
        store: Arc::new(
            MemoryStore::with_blocklist(bus.clone(), settings.store.retention(), blocklist.clone())
                .with_preferences(preferences.clone()),
        ),
        presence: Arc::new(MemoryPresence::default()),
        preferences,
        broker: Arc::new(MemoryBroker::new(bus, hub)),
        idempotency: Arc::new(MemoryIdempotency::default()),
        jobs: Arc::new(MemoryJobs::new(topics.clone())),
        timers: Arc::new(MemoryTimers::default()),
        webhooks: Arc::new(MemoryWebhooks::default()),
        topics,
        blocklist,
        sessions: None,
        redis: None,
    }
}

async fn redis_backend(
    settings: &Settings,
    node_id: &str,
    hub: Arc<Hub>,
) -> anyhow::Result<Backend> {
    let redis = herald_redis::RedisBackend::connect(
        settings.redis.to_backend(),
        node_id,
        settings.store.retention(),
        Duration::from_millis(settings.node.heartbeat_ms),
    )
    .await
    .map_err(|e| anyhow::anyhow!("redis at {}: {e}", settings.redis.url))?;
    let broker = redis.broker(hub).await?;
    let session = &settings.auth.session;
    let sessions = (!session.cookie.is_empty()).then(|| {
        let lookup = redis
            .session_lookup(&session.key_pattern, &session.user_field)
            .with_secrets(session.secrets.clone());
        Arc::new(RedisSessions(lookup)) as Arc<dyn SessionResolver>
    });
    Ok(Backend {
        store: redis.store(),
        presence: redis.presence(),
        broker,
        idempotency: redis.idempotency(),
        topics: redis.topics(),
        blocklist: redis.blocklist(),
        preferences: redis.preferences(),
        jobs: redis.jobs(Duration::from_secs(settings.fanout.claim_after_secs)),
        timers: redis.timers(),
        webhooks: redis.webhooks(),
        sessions,
        redis: Some(Arc::new(redis)),
    })
}

/// The web app's sessions, read from Redis.
struct RedisSessions(herald_redis::SessionLookup);

#[async_trait::async_trait]
impl SessionResolver for RedisSessions {
    async fn user_for(&self, session_id: &str) -> herald_core::Result<Option<String>> {
        self.0.user_for(session_id).await
    }
}

/// The periodic work of a node beside its heartbeat (which beats on a
/// thread of its own, `node/heartbeat.rs`), every `node.heartbeat_ms` until
/// the node is dropped: reaping dead nodes, and the counts metrics show.
async fn housekeeping_loop(node: std::sync::Weak<Node>) {
    let period = match node.upgrade() {
        Some(n) => Duration::from_millis(n.settings.node.heartbeat_ms),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conntrack_warner = crate::conntrack::Warner::default();
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else { return };
        if let Some(fill) = crate::conntrack::Fill::read() {
            node.metrics.set_conntrack(fill.entries, fill.limit);
            if conntrack_warner.should_warn(&fill, std::time::Instant::now()) {
                tracing::warn!(entries = fill.entries, limit = fill.limit,
                    "conntrack table over 90% full: new connections will be dropped when it fills \
                     (raise net.netfilter.nf_conntrack_max; docs/operations.md, Connection tracking)");
            }
        }
        // A draining node is about to exit: it must not start reaping
        // others (counting online users reaps first), because a reap cut
        // short leaves the reaped node's entries half removed until its
        // reap lock expires.
        if node.is_shutting_down() {
            continue;
        }
        match node.presence.online_users().await {
            Ok(users) => node.metrics.set_online_users(users),
            Err(e) => tracing::debug!(%e, "online users not read"),
        }
        node.limiter.prune();
        match node.fanout.backlog().await {
            Ok(jobs) => node.metrics.set_job_backlog(jobs),
            Err(e) => tracing::debug!(%e, "fan-out backlog not read"),
        }
        match node.fanout.workers().await {
            Ok(Some(counts)) => node.metrics.set_fanout_workers(counts),
            Ok(None) => {}
            Err(e) => tracing::debug!(%e, "fan-out group not read"),
        }
        match node.scheduler.pending().await {
            Ok(pending) => node.metrics.set_scheduled_pending(pending),
            Err(e) => tracing::debug!(%e, "scheduled sends not counted"),
        }
        match node.scheduler.snoozing().await {
            Ok(users) => node.metrics.set_snoozing(users),
            Err(e) => tracing::debug!(%e, "snoozing users not counted"),
        }
        if let Some(webhooks) = &node.webhooks {
            if let Err(e) = webhooks.sweep(herald_core::unix_ms()).await {
                tracing::debug!(%e, "dead webhook events not trimmed");
            }
            match webhooks.backlog().await {
                Ok(backlog) => node
                    .metrics
                    .set_webhook_backlog(&backlog, webhooks.in_flight()),
                Err(e) => tracing::debug!(%e, "webhook backlog not read"),
            }
        }
    }
}

/// This node's scheduler until the node is dropped: every `schedule.poll_ms`
/// it claims the sends that came due and appends them, then the users whose
/// snoozes came due and wakes them, round after round while rounds come
/// back full (a second's worth due at once).
async fn scheduler_loop(node: std::sync::Weak<Node>) {
    let (poll, batch) = match node.upgrade() {
        Some(n) => (n.scheduler.settings().poll, n.scheduler.settings().batch),
        None => return,
    };
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            let Some(node) = node.upgrade() else { return };
            match node
                .scheduler
                .run_due(&node.sender, herald_core::unix_ms())
                .await
            {
                Ok(round) => {
                    node.metrics.schedule_round(&round);
                    if round.claimed < batch {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(%e, "scheduler round failed");
                    break;
                }
            }
        }
        loop {
            let Some(node) = node.upgrade() else { return };
            match node
                .scheduler
                .run_wakes(&node.inbox, herald_core::unix_ms())
                .await
            {
                Ok(round) => {
                    node.metrics.wake_round(&round);
                    if round.users < batch {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(%e, "snooze wake-up round failed");
                    break;
                }
            }
        }
    }
}

fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && herald_core::validate_user_id(h).is_ok())
        .unwrap_or_else(|| "herald".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..6])
}
