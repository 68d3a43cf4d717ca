//! Building a node: the backend the settings pick (memory or Redis), the
//! parts wired over it, and the tasks that run beside it (heartbeat,
//! housekeeping, scheduler, admission's sampler, rebalancing). Apart from
//! `node.rs` because those tasks depend on the node: the node's own file
//! stays below them.

use std::sync::atomic::AtomicBool;
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

use super::{heartbeat, housekeeping_loop, scheduler_loop, Node};
use crate::admission::Gate;
use crate::api_keys::ApiKeys;
use crate::auth::{Authenticator, SessionResolver};
use crate::limits::RequestLimiter;
use crate::metrics::Metrics;
use crate::settings::{BackendKind, Settings};

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
