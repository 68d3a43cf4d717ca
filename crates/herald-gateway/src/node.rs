//! A gateway node: wires the backend, the hub, auth and metrics together.
//! This is the one place that knows which backend implementation runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_core::memory::{MemoryBroker, MemoryBus, MemoryPresence, MemoryStore};
use herald_core::{Broker, Hub, Presence, Store, Subscriptions};

use crate::auth::{Authenticator, SessionResolver};
use crate::metrics::Metrics;
use crate::settings::{BackendKind, Settings};

pub struct Node {
    pub id: String,
    pub settings: Settings,
    pub hub: Arc<Hub>,
    pub store: Arc<dyn Store>,
    pub presence: Arc<dyn Presence>,
    pub auth: Authenticator,
    pub metrics: Metrics,
    /// Kept alive for as long as the node runs.
    _broker: Arc<dyn Broker>,
    _subscriptions: Arc<Subscriptions>,
    shutting_down: AtomicBool,
}

/// The three backend parts plus the optional session store.
struct Backend {
    store: Arc<dyn Store>,
    presence: Arc<dyn Presence>,
    broker: Arc<dyn Broker>,
    sessions: Option<Arc<dyn SessionResolver>>,
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
        let backend = match settings.backend {
            BackendKind::Memory => memory_backend(&settings, hub.clone()),
            BackendKind::Redis => anyhow::bail!("the redis backend is not built in yet"),
        };
        let subscriptions = Subscriptions::new(
            backend.broker.clone(),
            Duration::from_millis(settings.node.subscription_linger_ms),
        );
        hub.bind(subscriptions.clone());
        let auth = Authenticator::new(&settings.auth, backend.sessions)?;
        let node = Arc::new(Node {
            metrics: Metrics::new(&id),
            id,
            settings,
            hub,
            store: backend.store,
            presence: backend.presence,
            auth,
            _broker: backend.broker,
            _subscriptions: subscriptions,
            shutting_down: AtomicBool::new(false),
        });
        tokio::spawn(heartbeat_loop(Arc::downgrade(&node)));
        Ok(node)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Marks the node as stopping: connections close with 1001 (reconnect
    /// elsewhere) instead of a slow-consumer code.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.hub.close_all();
    }
}

fn memory_backend(settings: &Settings, hub: Arc<Hub>) -> Backend {
    let bus = MemoryBus::new();
    Backend {
        store: Arc::new(MemoryStore::new(bus.clone(), settings.store.retention())),
        presence: Arc::new(MemoryPresence::default()),
        broker: Arc::new(MemoryBroker::new(bus, hub)),
        sessions: None,
    }
}

/// Tells presence the node is alive until the node is dropped.
async fn heartbeat_loop(node: std::sync::Weak<Node>) {
    let period = match node.upgrade() {
        Some(n) => Duration::from_millis(n.settings.node.heartbeat_ms),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else { return };
        if let Err(e) = node.presence.heartbeat().await {
            tracing::warn!(%e, "presence heartbeat failed");
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
