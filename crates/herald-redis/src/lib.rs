//! Herald's [`Store`], [`Broker`] and [`Presence`] on Redis, through fred.
//!
//! One [`RedisBackend`] per gateway node: it owns a small pool of command
//! connections (shared by the store, presence and session lookups) and hands
//! out a broker with a subscriber connection of its own, because a
//! connection in subscribed mode cannot run ordinary commands and a slow
//! command must never hold up pub/sub delivery.
//!
//! Works against a standalone server, a Sentinel-managed primary and a Redis
//! Cluster (Redis >= 7): every key of a user and the user's channel share one
//! hash tag, scripts only touch one slot, and on a Cluster pub/sub is sharded
//! (SPUBLISH/SSUBSCRIBE). See `docs/redis.md` for the key layout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::{Builder, ClientLike, Config, Pool, ReconnectPolicy};
use fred::types::config::ServerConfig;
use herald_core::{
    Blocklist, Broker, BrokerSink, CoreError, Idempotency, JobQueue, Presence, Retention, Store,
    Timers, Topics,
};

mod batch;
mod blocklist;
mod broker;
mod idempotency;
mod jobs;
mod keys;
mod leased;
mod library;
mod observer;
mod preferences;
mod presence;
mod sanity;
mod script;
mod session;
mod store;
mod timers;
mod tls;
mod topics;
mod webhooks;

pub use blocklist::RedisBlocklist;
pub use broker::RedisBroker;
pub use idempotency::RedisIdempotency;
pub use jobs::RedisJobs;
pub use library::library_name;
pub(crate) use observer::unavailable;
pub use observer::{set_observer, Observer};
pub use preferences::RedisPreferences;
pub use presence::{ReapHook, ReapStage, RedisPresence};
pub use session::{sign as sign_session_cookie, SessionLookup};
pub use store::RedisStore;
pub use timers::RedisTimers;
pub use tls::RedisTls;
pub use topics::RedisTopics;
pub use webhooks::RedisWebhooks;

/// The fred version this crate is built on, for callers that need its types
/// (e.g. to build a [`SessionLookup`] on a pool of their own).
pub use fred;

use keys::Keys;

/// How to reach Redis and how to name Herald's keys there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// fred's URL syntax: `redis://host:port[/db]`,
    /// `redis-cluster://host:port?node=host:port&node=...`,
    /// `redis-sentinel://host:port?sentinelServiceName=name&node=...`;
    /// `rediss…://` for TLS (see [`RedisTls`]).
    pub url: String,
    /// ACL user and password (`AUTH user pass`), replacing the URL's; a
    /// password without a user authenticates as `default`. Apart from the
    /// URL so that the password can come from a secret of its own.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Sentinel's own user and password (a `redis-sentinel://` URL only):
    /// the Sentinels' `requirepass`/ACL, which is not the data nodes'.
    /// Not inherited from `username`/`password`.
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
    /// Which certificates TLS trusts and presents (a `rediss…://` URL only).
    pub tls: RedisTls,
    /// Every key and channel starts with `<key_prefix>:`, so several Herald
    /// deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// Command connections in the pool. fred never pipelines `FCALL`, so
    /// each connection has one script in flight; concurrent appends are
    /// grouped into batches, at most `pool_size` batches in flight.
    pub pool_size: usize,
    /// Longest a command may take, including waiting for a reconnection.
    /// While Redis is down, calls fail with `Unavailable` after this instead
    /// of hanging.
    pub command_timeout: Duration,
    /// Longest wait for a TCP connection (and its handshake).
    pub connect_timeout: Duration,
    /// Reconnection backoff: starts at `reconnect_min`, doubles up to
    /// `reconnect_max`, forever.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Pub/sub messages buffered between the subscriber connection and the
    /// task that hands them to the sink. Overflow makes the broker ask the
    /// sink to resync rather than lose messages silently.
    pub pubsub_buffer: usize,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: "redis://127.0.0.1:6379".into(),
            username: None,
            password: None,
            sentinel_username: None,
            sentinel_password: None,
            tls: RedisTls::default(),
            key_prefix: "herald".into(),
            pool_size: 4,
            command_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            pubsub_buffer: 16_384,
        }
    }
}

impl RedisSettings {
    pub fn new(url: impl Into<String>) -> Self {
        RedisSettings {
            url: url.into(),
            ..RedisSettings::default()
        }
    }

    /// A fred builder for these settings. `events` is the capacity of each
    /// of the client's event channels (pub/sub messages, reconnections,
    /// errors, …): fred allocates every one of them up front, so command
    /// clients, which only ever see a few reconnection events, get a small
    /// one and only the subscriber gets `pubsub_buffer` (with 16,384 for
    /// every client, a node's RSS started 61 MB higher).
    fn builder(&self, events: usize) -> herald_core::Result<Builder> {
        let config = self.config()?;
        let mut builder = Builder::from_config(config);
        let ms = |d: Duration| d.as_millis().min(u32::MAX as u128) as u32;
        builder
            .set_policy(ReconnectPolicy::new_exponential(
                0,
                ms(self.reconnect_min),
                ms(self.reconnect_max),
                2,
            ))
            .with_performance_config(|perf| {
                perf.default_command_timeout = self.command_timeout;
                perf.broadcast_channel_capacity = events.max(32);
            })
            .with_connection_config(|conn| {
                conn.connection_timeout = self.connect_timeout;
                conn.internal_command_timeout = self.command_timeout;
                // No silent retry of a command that may have run: an append
                // retried after a dropped connection could be stored twice.
                conn.max_command_attempts = 1;
                // A batch of appends is one large write; with Nagle on, its
                // tail could wait for Redis's delayed ACK (tens of ms).
                conn.tcp.nodelay = Some(true);
            });
        Ok(builder)
    }

    /// fred's config from the URL, with the credentials and TLS settings
    /// applied. A setting that the URL's mode cannot use is an error rather
    /// than ignored (TLS files with `redis://`, a Sentinel password without
    /// a Sentinel).
    fn config(&self) -> herald_core::Result<Config> {
        // Only the scheme and host: the URL may carry a password.
        let shown = match self.url.rsplit_once('@') {
            Some((head, host)) => {
                let scheme = head.split("://").next().unwrap_or_default();
                format!("{scheme}://***@{host}")
            }
            None => self.url.clone(),
        };
        let mut config = Config::from_url(&self.url)
            .map_err(|e| CoreError::Invalid(format!("redis url {shown:?}: {e}")))?;
        if self.username.is_some() {
            config.username = self.username.clone();
        }
        if self.password.is_some() {
            config.password = self.password.clone();
        }
        match &mut config.server {
            ServerConfig::Sentinel {
                username, password, ..
            } => {
                if self.sentinel_username.is_some() {
                    *username = self.sentinel_username.clone();
                }
                if self.sentinel_password.is_some() {
                    *password = self.sentinel_password.clone();
                }
            }
            _ if self.sentinel_username.is_some() || self.sentinel_password.is_some() => {
                return Err(CoreError::Invalid(
                    "redis.sentinel_username/sentinel_password are set, but the redis url \
                     is not a redis-sentinel:// or rediss-sentinel:// url"
                        .into(),
                ));
            }
            _ => {}
        }
        match (config.tls.as_mut(), self.tls.connector()?) {
            (Some(tls), Some(connector)) => tls.connector = connector,
            (None, Some(_)) => {
                return Err(CoreError::Invalid(
                    "redis.tls is set, but the redis url's scheme is not rediss (use \
                     rediss://, rediss-sentinel:// or rediss-cluster:// for TLS)"
                        .into(),
                ))
            }
            _ => {}
        }
        Ok(config)
    }
}

/// Event channel capacity of command (non-subscriber) clients.
pub(crate) const COMMAND_CLIENT_EVENTS: usize = 32;

/// What the store, presence and brokers of one node share.
pub(crate) struct Shared {
    pub(crate) pool: Pool,
    pub(crate) keys: Keys,
    /// Redis Cluster: publish with SPUBLISH and subscribe with SSUBSCRIBE.
    pub(crate) sharded: bool,
    pub(crate) settings: RedisSettings,
    pub(crate) scripts: store::Scripts,
}

/// One gateway node's connection to Redis.
pub struct RedisBackend {
    shared: Arc<Shared>,
    node_id: String,
    store: Arc<RedisStore>,
    presence: Arc<RedisPresence>,
    idempotency: Arc<RedisIdempotency>,
    topics: Arc<RedisTopics>,
    blocklist: Arc<RedisBlocklist>,
    preferences: Arc<RedisPreferences>,
    brokers: Mutex<Vec<Arc<RedisBroker>>>,
}

impl RedisBackend {
    /// Connects the command pool (failing if Redis cannot be reached now, or
    /// is older than 7.0), refuses a Redis that may evict keys
    /// (`sanity.rs`), loads the library of Lua functions (`library.rs`) and
    /// registers `node_id` as alive. `heartbeat` is how often the gateway
    /// calls [`Presence::heartbeat`]; this node drops out of presence two
    /// intervals after its last heartbeat.
    pub async fn connect(
        settings: RedisSettings,
        node_id: &str,
        retention: Retention,
        heartbeat: Duration,
    ) -> herald_core::Result<RedisBackend> {
        herald_core::validate_user_id(node_id)
            .map_err(|e| CoreError::Invalid(format!("node id: {e}")))?;
        if settings.key_prefix.contains(['{', '}']) {
            return Err(CoreError::Invalid(
                "the redis key prefix may not contain '{' or '}'".into(),
            ));
        }
        let builder = settings.builder(COMMAND_CLIENT_EVENTS)?;
        let sharded = builder
            .get_config()
            .is_some_and(|c| c.server.is_clustered());
        let pool = builder
            .build_pool(settings.pool_size.max(1))
            .map_err(unavailable)?;
        pool.init().await.map_err(unavailable)?;
        sanity::check(&pool, sharded).await?;
        let client = pool.next();
        library::install(client, client.server_version()).await?;
        let shared = Arc::new(Shared {
            pool,
            keys: Keys::new(&settings.key_prefix),
            sharded,
            settings,
            scripts: store::Scripts::new(),
        });
        let store = Arc::new(RedisStore::new(shared.clone(), retention));
        let presence = Arc::new(RedisPresence::new(shared.clone(), node_id, heartbeat));
        let idempotency = Arc::new(RedisIdempotency::new(shared.clone()));
        let topics = Arc::new(RedisTopics::new(shared.clone()));
        let blocklist = Arc::new(RedisBlocklist::new(shared.clone()));
        let preferences = Arc::new(RedisPreferences::new(shared.clone()));
        // A starting node has no connections to restore, lapse or not.
        presence.beat().await?;
        Ok(RedisBackend {
            shared,
            node_id: node_id.to_owned(),
            store,
            presence,
            idempotency,
            topics,
            blocklist,
            preferences,
            brokers: Mutex::default(),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Whether this backend talks to a Redis Cluster (sharded pub/sub).
    pub fn is_cluster(&self) -> bool {
        self.shared.sharded
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    pub fn presence(&self) -> Arc<dyn Presence> {
        self.presence.clone()
    }

    /// The same presence as its own type, for what only Redis has (the
    /// reaper's test hook).
    pub fn redis_presence(&self) -> Arc<RedisPresence> {
        self.presence.clone()
    }

    /// Idempotency-key claims, shared with every node on this Redis and key
    /// prefix.
    pub fn idempotency(&self) -> Arc<dyn Idempotency> {
        self.idempotency.clone()
    }

    /// Topic subscriptions, shared with every node on this Redis and key
    /// prefix.
    pub fn topics(&self) -> Arc<dyn Topics> {
        self.topics.clone()
    }

    /// Who blocked whom, shared with every node on this Redis and key prefix.
    pub fn blocklist(&self) -> Arc<dyn Blocklist> {
        self.blocklist.clone()
    }

    /// What users set of their preferences, shared with every node on this
    /// Redis and key prefix.
    pub fn preferences(&self) -> Arc<dyn herald_core::PreferenceStore> {
        self.preferences.clone()
    }

    /// Fan-out jobs, shared with every node on this Redis and key prefix.
    /// A job whose worker recorded no progress for `claim_after` is handed
    /// to the next node that looks for work.
    pub fn jobs(&self, claim_after: Duration) -> Arc<dyn JobQueue> {
        Arc::new(RedisJobs::new(self.shared.clone(), claim_after))
    }

    /// Scheduled sends, shared with every node on this Redis and key prefix.
    pub fn timers(&self) -> Arc<dyn Timers> {
        Arc::new(RedisTimers::new(self.shared.clone()))
    }

    /// Webhook events, shared with every node on this Redis and key prefix.
    pub fn webhooks(&self) -> Arc<dyn herald_core::WebhookQueue> {
        Arc::new(RedisWebhooks::new(self.shared.clone()))
    }

    /// Opens this node's subscriber connection, subscribed to the `all`
    /// channel, delivering into `sink`.
    pub async fn broker(&self, sink: Arc<dyn BrokerSink>) -> herald_core::Result<Arc<dyn Broker>> {
        let broker = RedisBroker::start(self.shared.clone(), sink).await?;
        self.brokers.lock().unwrap().push(broker.clone());
        Ok(broker)
    }

    /// A session lookup on this backend's connections (when the web app's
    /// sessions live in the same Redis).
    pub fn session_lookup(&self, key_pattern: &str, user_field: &str) -> SessionLookup {
        SessionLookup::new(self.shared.pool.clone(), key_pattern, user_field)
    }

    /// Stops the brokers and closes every connection. Presence entries
    /// of this node are left to expire (a draining gateway removes its
    /// connections one by one before calling this).
    pub async fn shutdown(&self) {
        let brokers: Vec<_> = self.brokers.lock().unwrap().drain(..).collect();
        for broker in brokers {
            broker.stop().await;
        }
        let _ = self.shared.pool.quit().await;
    }
}
