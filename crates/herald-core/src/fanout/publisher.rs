//! [`FanOut`]: the publish operation, and the settings its workers share.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::Category;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use super::JobObserver;
use crate::backend::Idempotency;
use crate::backend::Store;
use crate::backend::{Job, JobMessage, JobQueue, JobStatus};
use crate::categories::Categories;
use crate::error::{CoreError, Result};
use crate::idempotency::{claim_or_wait, decode_outcome, fingerprint, validate_key};
use crate::topics::validate_topic;
use crate::validate::{MessageLimits, NewMessage};

/// How workers go through jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOutSettings {
    /// Receivers read from the snapshot and appended per step (the batched
    /// append path groups them into script calls); progress is recorded
    /// after each.
    pub chunk: usize,
    /// How often an idle worker looks for work queued on other nodes (a
    /// publish on this node wakes this node's worker at once).
    pub poll: Duration,
    /// Most messages per second one worker appends (0: as fast as the
    /// backend takes them), so a large publish cannot crowd out unicast.
    pub rate_per_sec: u32,
    /// A job handed out this many times (its workers died each time) is
    /// marked failed rather than tried again.
    pub max_attempts: u32,
}

impl Default for FanOutSettings {
    fn default() -> Self {
        FanOutSettings {
            chunk: 1_000,
            poll: Duration::from_secs(1),
            rate_per_sec: 0,
            max_attempts: 10,
        }
    }
}

/// The 202 answer of a publish.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub job: Uuid,
    /// Receivers in the job's snapshot.
    pub subscribers: u64,
}

/// What a publish's idempotency key covers.
#[derive(Serialize)]
struct Fingerprinted<'a> {
    topic: &'a str,
    category: &'a str,
    from: &'a Option<String>,
    title: &'a Option<String>,
    body: &'a str,
    data: &'a serde_json::Value,
    expires_at: Option<i128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_key: &'a Option<String>,
}

/// Publishes to topics and runs the fan-out jobs (see [`super::worker`]).
pub struct FanOut {
    pub(super) queue: Arc<dyn JobQueue>,
    pub(super) store: Arc<dyn Store>,
    idempotency: Arc<dyn Idempotency>,
    limits: MessageLimits,
    categories: Categories,
    window: Duration,
    pub(super) settings: FanOutSettings,
    /// Wakes this node's worker when this node queued a job.
    pub(super) wake: Notify,
    pub(super) observer: Option<Arc<dyn JobObserver>>,
    /// Where the worker arms each receiver's fallback webhook event (see
    /// [`FanOut::with_fallback`]).
    pub(super) fallback: Option<Arc<dyn crate::backend::WebhookQueue>>,
    /// Which nodes are alive (see [`FanOut::with_presence`]).
    pub(super) presence: Option<Arc<dyn crate::backend::Presence>>,
}

impl FanOut {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        store: Arc<dyn Store>,
        idempotency: Arc<dyn Idempotency>,
        limits: MessageLimits,
        categories: Categories,
        window: Duration,
        settings: FanOutSettings,
    ) -> Self {
        FanOut {
            queue,
            store,
            idempotency,
            limits,
            categories,
            window,
            settings,
            wake: Notify::new(),
            observer: None,
            fallback: None,
            presence: None,
        }
    }

    pub fn with_observer(mut self, observer: Arc<dyn JobObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Tells the worker which nodes are alive (the nodes `presence` lists;
    /// worker names are node ids): the worker of a node that is not, once
    /// its jobs were taken over, is forgotten at once instead of after an
    /// hour idle (see [`JobQueue::forget_idle_workers`]).
    pub fn with_presence(mut self, presence: Arc<dyn crate::backend::Presence>) -> Self {
        self.presence = Some(presence);
        self
    }

    /// Arms an unread fallback webhook event in `queue` for each receiver
    /// of a publish whose message has a fallback (its category's
    /// `fallback_after_secs`), with the topic, whose `fallback` setting of
    /// the receiver counts too.
    pub fn with_fallback(mut self, queue: Arc<dyn crate::backend::WebhookQueue>) -> Self {
        self.fallback = Some(queue);
        self
    }

    /// Queues a message to every subscriber of `topic` (but its `from`),
    /// once per idempotency `key` within `scope`. An empty category is the
    /// topic's default: `resource_publish` for `user:<id>` (a follow),
    /// `resource_subscription` otherwise. Announcements go to everyone and
    /// private messages to one user, not through topics.
    pub async fn publish(
        &self,
        scope: &str,
        topic: &str,
        mut message: NewMessage,
        key: Option<String>,
    ) -> Result<Published> {
        validate_topic(topic)?;
        if message.category.is_empty() {
            message.category = default_category(topic).to_string();
        }
        let asked_expiry = message.expires_at.map(|t| t.unix_timestamp_nanos());
        let draft = self.limits.draft(message, &self.categories)?;
        if draft.category == Category::ANNOUNCEMENT || draft.category == Category::MAILBOX {
            return Err(CoreError::Invalid(format!(
                "category: {} is not published to topics (announcements go to everyone, private messages to one user)",
                draft.category
            )));
        }
        let print = match &key {
            Some(key) => {
                validate_key(key)?;
                let print = fingerprint(&Fingerprinted {
                    topic,
                    category: draft.category.as_str(),
                    from: &draft.from,
                    title: &draft.title,
                    body: &draft.body,
                    data: &draft.data,
                    expires_at: asked_expiry,
                    group_key: &draft.group_key,
                });
                let first = claim_or_wait(&*self.idempotency, scope, key, &print, self.window);
                if let Some(bytes) = first.await? {
                    return decode_outcome(&bytes);
                }
                Some(print)
            }
            None => None,
        };
        let exclude = draft.from.clone();
        let job = Job {
            id: Uuid::now_v7(),
            topic: topic.to_owned(),
            message: JobMessage::from_draft(draft),
        };
        let subscribers = match self.queue.enqueue(&job, exclude.as_deref()).await {
            Ok(n) => n,
            Err(e) => {
                if let (Some(key), Some(_)) = (&key, &print) {
                    if let Err(e) = self.idempotency.release(scope, key).await {
                        tracing::warn!(%e, "idempotency claim not released");
                    }
                }
                return Err(e);
            }
        };
        let published = Published {
            job: job.id,
            subscribers,
        };
        if let Some(key) = &key {
            let outcome = serde_json::to_vec(&published).unwrap_or_default();
            if let Err(e) = self
                .idempotency
                .complete(scope, key, &outcome, self.window)
                .await
            {
                tracing::warn!(%e, "idempotency outcome not recorded");
            }
        }
        self.wake.notify_one();
        Ok(published)
    }

    /// A job's status, from any node.
    pub async fn status(&self, id: Uuid) -> Result<Option<JobStatus>> {
        self.queue.status(id).await
    }

    /// Jobs queued or running on all nodes.
    pub async fn backlog(&self) -> Result<u64> {
        self.queue.backlog().await
    }

    /// The workers the queue knows and the jobs they hold (see
    /// [`JobQueue::workers`]).
    pub async fn workers(&self) -> Result<Option<crate::backend::WorkerCounts>> {
        self.queue.workers().await
    }
}

/// The category of a publish that names none.
pub fn default_category(topic: &str) -> Category {
    if topic.starts_with("user:") {
        Category::RESOURCE_PUBLISH
    } else {
        Category::RESOURCE_SUBSCRIPTION
    }
}
