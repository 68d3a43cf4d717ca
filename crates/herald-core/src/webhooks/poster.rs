//! The worker's two outlets: the HTTP client that POSTs a try
//! ([`WebhookPoster`], the transport's part: core knows no HTTP client) and
//! the observer it reports to ([`WebhookObserver`], the node's metrics).

use std::time::Duration;

use async_trait::async_trait;

/// One try's request: the Standard Webhooks headers and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub url: String,
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`.
    pub signature: String,
    pub body: String,
}

/// What a try got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// An HTTP response with this status (only 2xx counts as delivered).
    Status(u16),
    /// No response in time.
    Timeout,
    /// No response at all (connection refused, TLS, …): why.
    Failed(String),
}

impl PostOutcome {
    /// For metrics: `2xx`, `3xx`, `4xx`, `5xx`, `timeout`, `error`.
    pub fn class(&self) -> &'static str {
        match self {
            PostOutcome::Status(200..=299) => "2xx",
            PostOutcome::Status(300..=399) => "3xx",
            PostOutcome::Status(400..=499) => "4xx",
            PostOutcome::Status(_) => "5xx",
            PostOutcome::Timeout => "timeout",
            PostOutcome::Failed(_) => "error",
        }
    }

    pub(super) fn delivered(&self) -> bool {
        matches!(self, PostOutcome::Status(200..=299))
    }

    pub(super) fn reason(&self) -> String {
        match self {
            PostOutcome::Status(status) => format!("HTTP {status}"),
            PostOutcome::Timeout => "timeout".into(),
            PostOutcome::Failed(why) => why.clone(),
        }
    }
}

/// The HTTP client: POSTs one try (timeout, no redirects, the response
/// body read no further than a small cap: the transport's part).
#[async_trait]
pub trait WebhookPoster: Send + Sync + 'static {
    async fn post(&self, request: &WebhookRequest) -> PostOutcome;
}

/// Where the worker reports, for metrics.
pub trait WebhookObserver: Send + Sync + 'static {
    /// An event changed: `created`, `dropped`, `deferred` (quiet hours),
    /// `delivered`, `retried`, `postponed` (not tried: the breaker open),
    /// `dead`, `revived` (a dead one sent again).
    fn event(&self, outcome: &'static str);
    /// A try ended after `took` with `outcome`.
    fn attempt(&self, outcome: &PostOutcome, took: Duration);
    /// An event died: `gave_up` (its schedule ran out) or `backlog_full`
    /// (created dead: `max_pending` were pending).
    fn dead(&self, reason: &'static str);
    /// This node's circuit breaker opened (true) or closed.
    fn breaker(&self, open: bool);
}

pub(super) struct Unobserved;

impl WebhookObserver for Unobserved {
    fn event(&self, _: &'static str) {}
    fn attempt(&self, _: &PostOutcome, _: Duration) {}
    fn dead(&self, _: &'static str) {}
    fn breaker(&self, _: bool) {}
}
