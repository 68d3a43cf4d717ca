//! Settings: built-in defaults, then an optional TOML file (`--config`), then
//! environment variables `HERALD__SECTION__KEY` (the config crate's
//! convention), each overriding the one before.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

mod admission;
mod credentials;
mod rebalance;
mod redis;
mod socketio;
mod webhooks;
mod workers;

pub use admission::{AdmissionSettings, Thresholds};
pub use credentials::{ApiKeySettings, ApiSettings, AuthSettings, JwtKey, SessionSettings};
pub use rebalance::{RebalanceSettings, Rebalancing};
use redis::mask_url_password;
pub use redis::{RedisSection, RedisTlsSection, StoreSettings};
pub use socketio::SocketIoSettings;
pub use webhooks::WebhooksSection;
pub use workers::{FanOutSection, ScheduleSection};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// One node, everything in process. No Redis needed.
    #[default]
    Memory,
    /// Store, broker and presence on Redis: many nodes, one user base.
    Redis,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub backend: BackendKind,
    pub server: ServerSettings,
    pub node: NodeSettings,
    pub auth: AuthSettings,
    pub api: ApiSettings,
    pub ws: WsSettings,
    pub store: StoreSettings,
    pub messages: MessagesSettings,
    pub drain: DrainSettings,
    pub fanout: FanOutSection,
    pub schedule: ScheduleSection,
    pub limits: LimitsSettings,
    pub admission: AdmissionSettings,
    /// Moving connections off a node above the cluster's mean
    /// (`crate::rebalance`); off by default.
    pub rebalance: RebalanceSettings,
    /// The Socket.IO endpoint for the old socket.io clients
    /// (`connections/socketio.rs`); off by default.
    pub socketio: SocketIoSettings,
    /// The unread fallback webhooks (`docs/webhooks.md`); off while `url`
    /// is empty.
    pub webhooks: WebhooksSection,
    /// Extra categories, or overrides of the six built-in ones, by name:
    /// `[categories.promo] max_age_secs = 604800, badge = false`.
    pub categories: BTreeMap<String, CategorySettings>,
    pub redis: RedisSection,
    pub log: LogSettings,
    pub dev: DevSettings,
}

/// Development conveniences, off by default (`make run` turns them on).
/// Never enable them in production: `/dev/token` mints a token for any user
/// and `/dev/messages` sends without the API key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevSettings {
    pub enabled: bool,
    /// The demo inbox, served at `/` and `/demo/…`.
    pub demo_dir: String,
    /// The browser SDK's build (`clients/js/dist`), served at `/sdk/…`.
    pub sdk_dir: String,
    /// Lifetime of the tokens `/dev/token` mints.
    pub token_ttl_secs: u64,
}

impl Default for DevSettings {
    fn default() -> Self {
        DevSettings {
            enabled: false,
            demo_dir: "clients/demo".into(),
            sdk_dir: "clients/js/dist".into(),
            token_ttl_secs: 24 * 3600,
        }
    }
}

/// How the node logs (to stderr). The level comes from `RUST_LOG`
/// (default `info`).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable lines, for development.
    #[default]
    Text,
    /// One JSON object per line, for log collectors in production.
    Json,
}

/// The graceful drain on SIGTERM.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainSettings {
    /// Connections are told to reconnect and closed in batches spread over
    /// this long; the process exits soon after (keep the pod's
    /// terminationGracePeriodSeconds above it).
    pub window_secs: u64,
    /// A client told to reconnect waits a random delay below this first,
    /// so that a batch does not land on the other nodes at one instant.
    pub max_reconnect_delay_ms: u64,
}

impl Default for DrainSettings {
    fn default() -> Self {
        DrainSettings {
            window_secs: 20,
            max_reconnect_delay_ms: 1_000,
        }
    }
}

/// What one client may use of a node. Each limit is per node (a user on
/// three nodes may have three times as much); 0 turns a limit off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// Connections (WebSocket and SSE) the node holds; one more is 503 at
    /// the handshake.
    pub max_connections: usize,
    /// Connections of one user; one more is 429 at the handshake.
    pub max_connections_per_user: usize,
    /// Requests (every client frame but `ack`, over WebSocket and `POST
    /// /v1/me/requests` alike) per second per user, with bursts of twice
    /// as many; past it a request gets error `rate_limited` (HTTP 429).
    pub requests_per_sec: u32,
    /// A connection whose requests were refused this many times in a row
    /// is closed with 4029.
    pub close_after_refusals: u32,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        LimitsSettings {
            max_connections: 0,
            max_connections_per_user: 64,
            requests_per_sec: 200,
            close_after_refusals: 100,
        }
    }
}

/// How one category is handled.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CategorySettings {
    /// Its messages expire this long after they were sent (0: only the
    /// stream's retention).
    pub max_age_secs: u64,
    /// Counted in `unread_total` and `unseen_total`.
    pub badge: bool,
    /// Whether a user who set nothing for this category gets its messages
    /// in the app (false: not stored for them unless they turn it on).
    pub in_app: bool,
    /// Whether such a user gets the fallback (webhooks, part 4).
    pub fallback: bool,
    /// An unread message of this category raises its receiver's fallback
    /// webhook this many seconds after it was stored (0: no fallback; a
    /// send's own `fallback_after_secs` overrides it).
    pub fallback_after_secs: u64,
}

impl Default for CategorySettings {
    fn default() -> Self {
        CategorySettings {
            max_age_secs: 0,
            badge: true,
            in_app: true,
            fallback: true,
            fallback_after_secs: 0,
        }
    }
}

impl Settings {
    /// These settings with every secret replaced by `***` (empty ones stay
    /// empty, so an unset secret shows), for `herald config`.
    pub fn masked(&self) -> Settings {
        let mask = |v: &str| {
            if v.is_empty() {
                String::new()
            } else {
                "***".into()
            }
        };
        let mut s = self.clone();
        s.auth.jwt_secret = mask(&s.auth.jwt_secret);
        for key in &mut s.auth.keys {
            key.secret = mask(&key.secret);
        }
        for key in &mut s.api.keys {
            key.key = mask(&key.key);
        }
        s.api.key = mask(&s.api.key);
        s.auth.session.secrets = s.auth.session.secrets.iter().map(|v| mask(v)).collect();
        s.redis.url = mask_url_password(&s.redis.url);
        s.redis.password = s.redis.password.as_deref().map(mask);
        s.redis.sentinel_password = s.redis.sentinel_password.as_deref().map(mask);
        s.webhooks.secret = s.webhooks.secret.iter().map(|v| mask(v)).collect();
        s
    }

    /// The categories this node accepts: the built-in six plus the
    /// configured ones.
    pub fn categories(&self) -> anyhow::Result<herald_core::Categories> {
        let mut specs = Vec::new();
        for (name, c) in &self.categories {
            let category = name
                .parse()
                .map_err(|e| anyhow::anyhow!("categories.{name}: {e}"))?;
            specs.push(herald_core::CategorySpec {
                category,
                max_age: (c.max_age_secs > 0).then(|| Duration::from_secs(c.max_age_secs)),
                badge: c.badge,
                defaults: herald_protocol::Channels {
                    in_app: c.in_app,
                    fallback: c.fallback,
                },
                fallback_after: match c.fallback_after_secs {
                    0 => None,
                    secs if secs > herald_core::MAX_FALLBACK_AFTER_SECS => anyhow::bail!(
                        "categories.{name}.fallback_after_secs: at most {}",
                        herald_core::MAX_FALLBACK_AFTER_SECS
                    ),
                    secs => Some(Duration::from_secs(secs)),
                },
            });
        }
        Ok(herald_core::Categories::new(specs))
    }
}

/// How sends are handled.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesSettings {
    /// How long an idempotency key holds its first outcome (retries within
    /// it get that outcome; the same key with another body is a conflict).
    pub idempotency_window_secs: u64,
}

impl Default for MessagesSettings {
    fn default() -> Self {
        MessagesSettings {
            idempotency_window_secs: 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Pending TCP connections the kernel queues (capped by
    /// net.core.somaxconn). A reconnect storm brings thousands at once; the
    /// usual 128 makes the rest retry their SYN a second later.
    pub backlog: u32,
    /// Threads that run connections and requests; 0 = one per CPU the
    /// process may use (a cgroup's CPU quota counts). Fewer than the
    /// machine's cores pays where a node shares them with other busy
    /// processes (Redis, a load generator): every thread that sleeps and is
    /// woken again per request costs system time (`docs/benchmarks.md`).
    pub worker_threads: usize,
}

/// Most runtime threads a node may be given (`server.worker_threads`).
const MAX_WORKER_THREADS: usize = 1024;

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "127.0.0.1:8080".parse().unwrap(),
            backlog: 4096,
            worker_threads: 0,
        }
    }
}

impl ServerSettings {
    /// Binds the listen address with the configured backlog.
    pub fn bind(&self) -> std::io::Result<tokio::net::TcpListener> {
        let socket = match self.listen {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(self.listen)?;
        socket.listen(self.backlog)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSettings {
    /// Unique per node; empty means "make one up" (host name, pid, random).
    pub id: String,
    /// How often the node tells presence it is alive.
    pub heartbeat_ms: u64,
    /// How long a user's broker subscription outlives their last connection.
    pub subscription_linger_ms: u64,
    /// Presence writes (a connection's add and remove) in flight at once;
    /// more wait their turn, so a mass teardown or re-registration does
    /// not time out in the backend's queue.
    pub presence_in_flight: usize,
    /// How fast a node that presence had given up for dead (its beats
    /// lapsed) registers its connections again, per second.
    pub reregister_per_sec: u32,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            id: String::new(),
            heartbeat_ms: 5_000,
            subscription_linger_ms: 5_000,
            presence_in_flight: 64,
            reregister_per_sec: 2_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsSettings {
    /// Interval of server pings; a connection silent for two is closed.
    pub heartbeat_ms: u64,
    /// Deliveries a connection may have queued before it counts as slow.
    pub outbound_queue: usize,
    /// tungstenite's read buffer. Its 128 KiB default costs ~130 KiB per
    /// connection; a few KiB is plenty for client frames.
    pub read_buffer_size: usize,
    /// Frames are collected in tungstenite's write buffer up to this many
    /// bytes before they are written; the connection flushes what is left
    /// once per wake-up. So pipelined replies and catch-up pages leave in
    /// few syscalls, while the buffer a connection keeps after a burst (its
    /// capacity is not given back) stays small. 0 writes every frame at once.
    pub write_buffer_size: usize,
    /// Hard cap of the write buffer: beyond it a write fails.
    pub max_write_buffer_size: usize,
    /// Largest client message accepted.
    pub max_message_size: usize,
    /// A write blocked this long (client not reading at all) ends the
    /// connection.
    pub write_timeout_ms: u64,
    /// A device connecting for the first time gets at most this many of the
    /// user's unread announcements (the newest), not the whole retained
    /// `all` stream.
    pub new_device_announcements: u64,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            heartbeat_ms: 25_000,
            outbound_queue: 256,
            read_buffer_size: 1024,
            write_buffer_size: 4096,
            max_write_buffer_size: 256 * 1024,
            max_message_size: 64 * 1024,
            write_timeout_ms: 10_000,
            new_device_announcements: 50,
        }
    }
}

impl Settings {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let env = config::Environment::with_prefix("HERALD")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("auth.allowed_origins")
            .with_list_parse_key("auth.session.secrets")
            .with_list_parse_key("webhooks.secret");
        let settings: Settings = builder
            .add_source(env)
            .build()
            .context("reading settings")?
            .try_deserialize()
            .context("invalid settings")?;
        settings.validate()?;
        Ok(settings)
    }

    /// Values the types allow but a node cannot run with; each error names
    /// the key and the value.
    /// `[rebalance]` checked against the drain's jitter, which moved
    /// clients wait too.
    pub fn rebalancing(&self) -> anyhow::Result<Rebalancing> {
        self.rebalance.checked(self.drain.max_reconnect_delay_ms)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("ws.heartbeat_ms", self.ws.heartbeat_ms),
            ("ws.outbound_queue", self.ws.outbound_queue as u64),
            ("store.max_entries", self.store.max_entries as u64),
            ("node.heartbeat_ms", self.node.heartbeat_ms),
            (
                "node.presence_in_flight",
                self.node.presence_in_flight as u64,
            ),
            (
                "node.reregister_per_sec",
                self.node.reregister_per_sec as u64,
            ),
            ("drain.window_secs", self.drain.window_secs),
        ];
        for (key, value) in positive {
            anyhow::ensure!(value > 0, "{key} = {value}: must be greater than 0");
        }
        anyhow::ensure!(
            self.ws.read_buffer_size >= 256,
            "ws.read_buffer_size = {}: must be at least 256 bytes",
            self.ws.read_buffer_size
        );
        anyhow::ensure!(
            self.backend != BackendKind::Redis || !self.redis.url.is_empty(),
            "redis.url = \"\": the redis backend needs a URL"
        );
        anyhow::ensure!(
            self.server.worker_threads <= MAX_WORKER_THREADS,
            "server.worker_threads = {}: at most {MAX_WORKER_THREADS} (0 = one per CPU)",
            self.server.worker_threads
        );
        self.categories()?;
        self.admission.thresholds()?;
        self.rebalancing()?;
        self.webhooks.core()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let mut s = Settings::default();
        s.auth.jwt_secret = "s3cret".into();
        s.api.key = "k".into();
        s.auth.session.secrets = vec!["a".into(), "b".into()];
        s.redis.url = "redis://app:pw@redis:6379/0".into();
        s.redis.password = Some("pw".into());
        s.redis.sentinel_password = Some("spw".into());
        let m = s.masked();
        assert_eq!(m.redis.password.as_deref(), Some("***"));
        assert_eq!(m.redis.sentinel_password.as_deref(), Some("***"));
        assert_eq!(
            (m.auth.jwt_secret.as_str(), m.api.key.as_str()),
            ("***", "***")
        );
        assert_eq!(m.auth.session.secrets, vec!["***", "***"]);
        assert_eq!(m.redis.url, "redis://app:***@redis:6379/0");
        assert_eq!(mask_url_password("redis://h:1"), "redis://h:1");
        assert_eq!(Settings::default().masked().auth.jwt_secret, "");
    }
}
