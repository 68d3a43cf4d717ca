//! The `[webhooks]` section: where the unread fallback webhooks go, how
//! they are signed, and how a node works them (`docs/webhooks.md`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// The unread fallback webhooks. Off while `url` is empty.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksSection {
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// Standard Webhooks secrets (`whsec_<base64>`): one, or several
    /// during a rotation (a list, or comma-separated in
    /// `HERALD__WEBHOOKS__SECRET`); each signs every request.
    #[serde(deserialize_with = "one_or_many")]
    pub secret: Vec<String>,
    /// A try with no response in this long failed (and is retried).
    pub timeout_ms: u64,
    /// Events this node works on at once; the rest wait, durable, for a
    /// free slot here or on another node.
    pub max_in_flight: usize,
    /// Run this node's worker (a node that does not still arms events).
    pub worker: bool,
    /// How often the worker looks for due events.
    pub poll_ms: u64,
    /// How long a claim holds an event back from other nodes; more than
    /// `timeout_ms`. What a node that dies held goes out this much later.
    pub lease_ms: u64,
    /// The first retry comes half to all of this after the first failed
    /// try; each next one doubles, up to `retry_cap_secs`.
    pub retry_base_ms: u64,
    pub retry_cap_secs: u64,
    /// An event still failing this long after it was created is dead.
    pub give_up_after_secs: u64,
    /// Users an announcement's event arms per claim (its audience, the
    /// users who connected): at most 10,000, one call inside the lease.
    pub audience_page: usize,
    /// Pending events (created, not delivered yet), all nodes together,
    /// past which a new event is created dead at once (listed, retryable).
    pub max_pending: u64,
    /// Dead events kept; the oldest beyond are forgotten (and after 7 days
    /// any).
    pub max_dead: u64,
    /// Failed tries in a row that open a node's circuit breaker (0: none).
    pub breaker_failures: u32,
    /// While it is open, one try (the probe) per this long.
    pub breaker_probe_secs: u64,
}

impl Default for WebhooksSection {
    fn default() -> Self {
        WebhooksSection {
            url: String::new(),
            secret: Vec::new(),
            timeout_ms: 10_000,
            max_in_flight: 256,
            worker: true,
            poll_ms: 250,
            lease_ms: 30_000,
            retry_base_ms: 5_000,
            retry_cap_secs: 3_600,
            give_up_after_secs: 24 * 3_600,
            audience_page: 1_000,
            max_pending: 100_000,
            max_dead: 100_000,
            breaker_failures: 20,
            breaker_probe_secs: 30,
        }
    }
}

/// A string or a list of strings (a single secret, or several).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) if s.is_empty() => Vec::new(),
        OneOrMany::One(s) => s.split(',').map(|s| s.trim().to_owned()).collect(),
        OneOrMany::Many(v) => v,
    })
}

impl WebhooksSection {
    /// Whether webhooks are on.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// The checked settings of the worker, `None` when off. Errors name
    /// the key.
    pub fn core(&self) -> anyhow::Result<Option<herald_core::WebhookSettings>> {
        if !self.enabled() {
            anyhow::ensure!(
                self.secret.is_empty(),
                "webhooks.secret: set, but webhooks.url is empty"
            );
            return Ok(None);
        }
        let scheme = self.url.split_once("://").map(|(s, _)| s);
        anyhow::ensure!(
            matches!(scheme, Some("http" | "https")) && self.url.len() > "https://".len(),
            "webhooks.url = {:?}: must be an http:// or https:// URL",
            self.url
        );
        let signer = herald_core::Signer::new(&self.secret)?;
        anyhow::ensure!(
            self.timeout_ms > 0,
            "webhooks.timeout_ms: must be greater than 0"
        );
        anyhow::ensure!(
            self.lease_ms > self.timeout_ms + 1_000,
            "webhooks.lease_ms = {}: must exceed webhooks.timeout_ms ({}) by more than a second",
            self.lease_ms,
            self.timeout_ms
        );
        for (key, value) in [
            ("webhooks.max_in_flight", self.max_in_flight as u64),
            ("webhooks.poll_ms", self.poll_ms),
            ("webhooks.retry_base_ms", self.retry_base_ms),
            ("webhooks.retry_cap_secs", self.retry_cap_secs),
            ("webhooks.give_up_after_secs", self.give_up_after_secs),
            ("webhooks.audience_page", self.audience_page as u64),
            ("webhooks.max_pending", self.max_pending),
            ("webhooks.max_dead", self.max_dead),
            ("webhooks.breaker_probe_secs", self.breaker_probe_secs),
        ] {
            anyhow::ensure!(value > 0, "{key} = {value}: must be greater than 0");
        }
        anyhow::ensure!(
            self.audience_page <= 10_000,
            "webhooks.audience_page = {}: must be at most 10000",
            self.audience_page
        );
        let mut settings = herald_core::WebhookSettings::new(self.url.clone(), signer);
        settings.max_in_flight = self.max_in_flight;
        settings.poll = Duration::from_millis(self.poll_ms);
        settings.lease = Duration::from_millis(self.lease_ms);
        settings.retry_base = Duration::from_millis(self.retry_base_ms);
        settings.retry_cap = Duration::from_secs(self.retry_cap_secs);
        settings.give_up_after = Duration::from_secs(self.give_up_after_secs);
        settings.audience_page = self.audience_page;
        settings.max_pending = self.max_pending;
        settings.max_dead = self.max_dead;
        settings.breaker_failures = self.breaker_failures;
        settings.breaker_probe = Duration::from_secs(self.breaker_probe_secs);
        Ok(Some(settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> String {
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()
    }

    #[test]
    fn off_without_a_url_and_checked_with_one() {
        assert!(WebhooksSection::default().core().unwrap().is_none());
        let on = WebhooksSection {
            url: "https://app.example/hooks".into(),
            secret: vec![secret(), secret()],
            ..WebhooksSection::default()
        };
        assert!(on.core().unwrap().is_some());
        for (change, key) in [
            (
                WebhooksSection {
                    url: "ftp://x".into(),
                    ..on.clone()
                },
                "webhooks.url",
            ),
            (
                WebhooksSection {
                    secret: vec![],
                    ..on.clone()
                },
                "webhooks.secret",
            ),
            (
                WebhooksSection {
                    secret: vec![secret(), "plain".into()],
                    ..on.clone()
                },
                "webhooks.secret[1]",
            ),
            (
                WebhooksSection {
                    lease_ms: 5_000,
                    ..on.clone()
                },
                "webhooks.lease_ms",
            ),
            (
                WebhooksSection {
                    url: String::new(),
                    ..on.clone()
                },
                "webhooks.secret",
            ),
        ] {
            let err = change.core().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn a_secret_is_one_string_or_a_list() {
        let one: WebhooksSection =
            toml::from_str(&format!("url = \"http://h/x\"\nsecret = \"{}\"", secret())).unwrap();
        assert_eq!(one.secret, vec![secret()]);
        let many: WebhooksSection =
            toml::from_str(&format!("secret = [\"{0}\", \"{0}\"]", secret())).unwrap();
        assert_eq!(many.secret.len(), 2);
        assert!(toml::from_str::<WebhooksSection>("urll = \"x\"").is_err());
    }
}
