//! `[store]` and `[redis]`: what the node keeps and the Redis it keeps it
//! in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    pub max_entries: usize,
    pub max_age_secs: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        let r = herald_core::Retention::default();
        StoreSettings {
            max_entries: r.max_entries,
            max_age_secs: r.max_age.as_secs(),
        }
    }
}

impl StoreSettings {
    pub fn retention(&self) -> herald_core::Retention {
        herald_core::Retention {
            max_entries: self.max_entries,
            max_age: Duration::from_secs(self.max_age_secs),
        }
    }
}

/// The `[redis]` section of the settings file (named apart from
/// `herald_redis::RedisSettings`, which it is turned into by `to_backend`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSection {
    /// fred's URL syntax; the scheme picks the mode: `redis://`,
    /// `redis-cluster://`, `redis-sentinel://`, and `rediss…://` for TLS.
    pub url: String,
    /// Prefix of every key and channel, so deployments can share a Redis.
    pub key_prefix: String,
    /// Command connections per node.
    pub pool_size: usize,
    /// A command fails (503 at the API) after this long, e.g. while Redis
    /// is down, instead of hanging.
    pub command_timeout_ms: u64,
    /// ACL user and password (`AUTH user pass`), replacing the URL's: the
    /// password can then come from a secret of its own
    /// (`HERALD__REDIS__PASSWORD`).
    pub username: Option<String>,
    pub password: Option<String>,
    /// The Sentinels' own user and password (a `redis-sentinel://` URL).
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
    /// Certificates for TLS (a `rediss…://` URL).
    pub tls: RedisTlsSection,
}

/// `[redis.tls]`: PEM files; unset, TLS trusts the system's roots and
/// presents no client certificate.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisTlsSection {
    /// The CA certificates to trust instead of the system's.
    pub ca_file: Option<std::path::PathBuf>,
    /// A client certificate chain and its key, for a Redis that verifies
    /// clients.
    pub cert_file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
}

impl Default for RedisSection {
    fn default() -> Self {
        let d = herald_redis::RedisSettings::default();
        RedisSection {
            url: d.url,
            key_prefix: d.key_prefix,
            pool_size: d.pool_size,
            command_timeout_ms: d.command_timeout.as_millis() as u64,
            username: None,
            password: None,
            sentinel_username: None,
            sentinel_password: None,
            tls: RedisTlsSection::default(),
        }
    }
}

impl RedisSection {
    pub fn to_backend(&self) -> herald_redis::RedisSettings {
        herald_redis::RedisSettings {
            url: self.url.clone(),
            key_prefix: self.key_prefix.clone(),
            pool_size: self.pool_size,
            command_timeout: Duration::from_millis(self.command_timeout_ms),
            username: self.username.clone(),
            password: self.password.clone(),
            sentinel_username: self.sentinel_username.clone(),
            sentinel_password: self.sentinel_password.clone(),
            tls: herald_redis::RedisTls {
                ca_file: self.tls.ca_file.clone(),
                cert_file: self.tls.cert_file.clone(),
                key_file: self.tls.key_file.clone(),
            },
            ..herald_redis::RedisSettings::default()
        }
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub(super) fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((auth, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Settings;

    /// A managed Redis's settings reach the backend; a misspelt TLS key is
    /// refused by name.
    #[test]
    fn managed_redis_settings() {
        let dir = std::env::temp_dir().join(format!("herald-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("redis.toml");
        std::fs::write(
            &file,
            "[redis]\n\
             url = \"rediss-sentinel://s1:26379?sentinelServiceName=herald\"\n\
             username = \"herald\"\n\
             password = \"pw\"\n\
             sentinel_password = \"spw\"\n\
             [redis.tls]\n\
             ca_file = \"/etc/herald/ca.pem\"\n",
        )
        .unwrap();
        let backend = Settings::load(Some(&file)).unwrap().redis.to_backend();
        assert_eq!(backend.username.as_deref(), Some("herald"));
        assert_eq!(backend.password.as_deref(), Some("pw"));
        assert_eq!(backend.sentinel_password.as_deref(), Some("spw"));
        assert_eq!(backend.sentinel_username, None);
        assert_eq!(
            backend.tls.ca_file.as_deref(),
            Some(Path::new("/etc/herald/ca.pem"))
        );
        std::fs::write(&file, "[redis.tls]\nca_path = \"/x\"\n").unwrap();
        let err = format!("{:#}", Settings::load(Some(&file)).unwrap_err());
        assert!(err.contains("ca_path"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
