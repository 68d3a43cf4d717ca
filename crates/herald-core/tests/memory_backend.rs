//! The behavioural suite against the in-memory backend.

use std::sync::Arc;

use async_trait::async_trait;
use herald_core::memory::{
    MemoryBlocklist, MemoryBroker, MemoryBus, MemoryIdempotency, MemoryJobs, MemoryPreferences,
    MemoryPresence, MemoryStore, MemoryTimers, MemoryTopics, MemoryWebhooks,
};
use herald_core::testkit::Backend;
use herald_core::{
    Blocklist, Broker, BrokerSink, Idempotency, JobQueue, Presence, Retention, Store, Timers,
    Topics,
};

struct Memory {
    bus: Arc<MemoryBus>,
    presence: Arc<MemoryPresence>,
    idempotency: Arc<MemoryIdempotency>,
    topics: Arc<MemoryTopics>,
    blocklist: Arc<MemoryBlocklist>,
    jobs: Arc<MemoryJobs>,
    timers: Arc<MemoryTimers>,
    preferences: Arc<MemoryPreferences>,
    webhooks: Arc<MemoryWebhooks>,
}

async fn memory() -> Memory {
    let topics = Arc::new(MemoryTopics::default());
    let bus = MemoryBus::new();
    Memory {
        preferences: Arc::new(MemoryPreferences::new(bus.clone())),
        bus,
        presence: Arc::default(),
        idempotency: Arc::default(),
        jobs: Arc::new(MemoryJobs::new(topics.clone())),
        topics,
        blocklist: Arc::default(),
        timers: Arc::default(),
        webhooks: Arc::default(),
    }
}

#[async_trait]
impl Backend for Memory {
    async fn store(&self, retention: Retention) -> Arc<dyn Store> {
        Arc::new(
            MemoryStore::with_blocklist(self.bus.clone(), retention, self.blocklist.clone())
                .with_preferences(self.preferences.clone()),
        )
    }
    async fn broker(&self, _node: &str, sink: Arc<dyn BrokerSink>) -> Arc<dyn Broker> {
        Arc::new(MemoryBroker::new(self.bus.clone(), sink))
    }
    async fn presence(&self, _node: &str) -> Arc<dyn Presence> {
        self.presence.clone()
    }
    async fn idempotency(&self) -> Arc<dyn Idempotency> {
        self.idempotency.clone()
    }
    async fn topics(&self) -> Arc<dyn Topics> {
        self.topics.clone()
    }
    async fn blocklist(&self) -> Arc<dyn Blocklist> {
        self.blocklist.clone()
    }
    async fn jobs(&self) -> Arc<dyn JobQueue> {
        self.jobs.clone()
    }
    async fn timers(&self) -> Arc<dyn Timers> {
        self.timers.clone()
    }
    async fn preferences(&self) -> Arc<dyn herald_core::PreferenceStore> {
        self.preferences.clone()
    }
    async fn webhooks(&self) -> Arc<dyn herald_core::WebhookQueue> {
        self.webhooks.clone()
    }
}

herald_core::backend_suite!(memory());
