//! How a node's webhook worker works: the `[webhooks]` settings as core
//! takes them (the gateway's settings file turns into these).

use std::time::Duration;

use super::Signer;

/// How a node's webhook worker works.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where events are POSTed.
    pub url: String,
    pub signer: Signer,
    /// Events this node works on at once (the rest wait in the index).
    pub max_in_flight: usize,
    /// How often the worker looks for due events.
    pub poll: Duration,
    /// How long a claim holds an event back from other nodes: longer than
    /// a try's timeout, so that a try in flight is never repeated
    /// elsewhere; a node that dies delays its events by at most this.
    pub lease: Duration,
    /// The first retry's delay is half to all of this; each next one
    /// doubles ([`retry_delay`](super::retry_delay)), up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// An event still failing this long after it was created is dead.
    pub give_up_after: Duration,
    /// Users of the audience an announcement's event arms per claim: one
    /// call, which must end well inside the lease.
    pub audience_page: usize,
    /// Pending events (created, not delivered yet), all nodes together,
    /// past which an event is created dead.
    pub max_pending: u64,
    /// Dead events kept (the oldest beyond are forgotten by [`Webhooks::sweep`](super::Webhooks::sweep)).
    pub max_dead: u64,
    /// Failed tries in a row that open this node's circuit breaker (0: no
    /// breaker).
    pub breaker_failures: u32,
    /// While the breaker is open, one try (a probe) per this long.
    pub breaker_probe: Duration,
}

impl WebhookSettings {
    /// The defaults for `url`, signed with `signer`.
    pub fn new(url: String, signer: Signer) -> Self {
        WebhookSettings {
            url,
            signer,
            max_in_flight: 256,
            poll: Duration::from_millis(250),
            lease: Duration::from_secs(30),
            retry_base: Duration::from_secs(5),
            retry_cap: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
            audience_page: 1_000,
            max_pending: 100_000,
            max_dead: 100_000,
            breaker_failures: 20,
            breaker_probe: Duration::from_secs(30),
        }
    }
}
