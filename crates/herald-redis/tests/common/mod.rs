//! The suite's [`Backend`] on a Redis that a test binary shares between its
//! cases. Each case gets its own key prefix, so cases never see each
//! other's streams, presence or `all` stream.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::testkit::Backend;
use herald_core::{Broker, BrokerSink, Presence, Retention, Store};
use herald_redis::{RedisBackend, RedisSettings};

pub const HEARTBEAT: Duration = Duration::from_secs(10);

pub struct TestBackend {
    pub settings: RedisSettings,
}

impl TestBackend {
    pub fn new(url: String) -> Self {
        TestBackend {
            settings: RedisSettings {
                key_prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
                ..RedisSettings::new(url)
            },
        }
    }

    pub async fn connect(&self, node: &str, retention: Retention) -> RedisBackend {
        RedisBackend::connect(self.settings.clone(), node, retention, HEARTBEAT)
            .await
            .expect("connect to redis")
    }
}

#[async_trait]
impl Backend for TestBackend {
    async fn store(&self, retention: Retention) -> Arc<dyn Store> {
        self.connect("store", retention).await.store()
    }
    async fn broker(&self, node: &str, sink: Arc<dyn BrokerSink>) -> Arc<dyn Broker> {
        self.connect(node, Retention::default())
            .await
            .broker(sink)
            .await
            .expect("broker")
    }
    async fn presence(&self, node: &str) -> Arc<dyn Presence> {
        self.connect(node, Retention::default()).await.presence()
    }
}
