//! The fan-out worker: one loop per node that takes jobs from the
//! [`JobQueue`](crate::JobQueue) and appends their messages, chunk by chunk.
//!
//! A worker never gives a job back on a backend error: it retries the chunk
//! (appends of ids already stored are no-ops) until it succeeds or the
//! queue says another worker took the job over. A worker that dies simply
//! stops recording progress; the queue then hands the job to another.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::FanOut;
use crate::backend::{JobState, Lease, WebhookEvent};
use crate::error::{CoreError, Result};
use crate::model::StreamKey;

/// Longest pause between retries of a failing chunk.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How often an idle worker asks the queue to forget dead workers.
const FORGET_EVERY: Duration = Duration::from_secs(600);
/// Without presence to tell which nodes are alive, a worker that held
/// nothing for this long is forgotten (a live one is known again at its
/// next take, so this only has to outlast a restart).
const FORGET_IDLE: Duration = Duration::from_secs(3600);

/// How a job ended on this worker.
enum Outcome {
    Finished(JobState),
    /// Another worker holds it now.
    Lost,
}

impl FanOut {
    /// Works on jobs until the task is dropped or aborted (a job it held
    /// is then taken over by another node after the claim timeout).
    pub async fn run_worker(self: Arc<Self>, worker: String) {
        let mut forgot_at = Instant::now();
        loop {
            match self.queue.take(&worker).await {
                Ok(Some(lease)) => {
                    let taken_over = lease.attempts > 1;
                    self.work(&worker, lease).await;
                    if taken_over {
                        self.forget_dead_workers(&worker).await;
                    }
                }
                Ok(None) => {
                    if forgot_at.elapsed() >= FORGET_EVERY {
                        forgot_at = Instant::now();
                        self.forget_dead_workers(&worker).await;
                    }
                    let _ = tokio::time::timeout(self.settings.poll, self.wake.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(%e, "fan-out: no job taken");
                    tokio::time::sleep(self.settings.poll).await;
                }
            }
        }
    }

    /// Nodes that died leave their worker's entry in the queue (Redis: a
    /// consumer per node in the group, forever): a worker clears those
    /// now and then while idle, and right after it took over a job (the
    /// dead worker may hold nothing any more). With presence, every worker
    /// of a node that is not alive goes once it holds nothing; without it
    /// (or when presence cannot be read), those idle for an hour. Returns
    /// how many went (0 when the queue could not be asked).
    pub async fn forget_dead_workers(&self, worker: &str) -> u64 {
        let mut keep = vec![worker.to_string()];
        let mut idle = FORGET_IDLE;
        if let Some(presence) = &self.presence {
            match presence.node_connections().await {
                Ok(live) => {
                    keep.extend(live.into_keys());
                    idle = Duration::ZERO;
                }
                Err(e) => tracing::debug!(%e, "fan-out: live nodes not read"),
            }
        }
        match self.queue.forget_idle_workers(idle, &keep).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(forgotten = n, "fan-out: forgot the workers of gone nodes");
                }
                n
            }
            Err(e) => {
                tracing::debug!(%e, "fan-out: idle workers not forgotten");
                0
            }
        }
    }

    async fn work(&self, worker: &str, lease: Lease) {
        if let Some(o) = &self.observer {
            o.started();
        }
        tracing::debug!(job = %lease.job.id, topic = lease.job.topic, total = lease.total,
            from = lease.done, attempts = lease.attempts, "fan-out job taken");
        let outcome = if lease.attempts > self.settings.max_attempts {
            tracing::warn!(job = %lease.job.id, attempts = lease.attempts,
                "fan-out job handed out too often; marked failed");
            self.finish(worker, &lease, JobState::Failed).await
        } else {
            self.deliver(worker, &lease).await
        };
        if let Some(o) = &self.observer {
            o.ended(match outcome {
                Outcome::Finished(state) => Some(state),
                Outcome::Lost => None,
            });
        }
    }

    /// Appends chunk after chunk from where the lease starts.
    async fn deliver(&self, worker: &str, lease: &Lease) -> Outcome {
        let started = Instant::now();
        let mut done = lease.done;
        loop {
            let receivers = self
                .retry(lease, || {
                    self.queue.receivers(lease, done, self.settings.chunk)
                })
                .await;
            if receivers.is_empty() {
                break;
            }
            self.retry(lease, || self.append_chunk(lease, &receivers))
                .await;
            done += receivers.len() as u64;
            if !self
                .retry(lease, || self.queue.progress(lease, worker, done))
                .await
            {
                tracing::info!(job = %lease.job.id, "fan-out job taken over by another worker");
                return Outcome::Lost;
            }
            self.keep_rate(started, done - lease.done).await;
        }
        let state = if done >= lease.total {
            JobState::Done
        } else {
            // The snapshot ended early: it expired or was deleted.
            tracing::warn!(job = %lease.job.id, done, total = lease.total,
                "fan-out snapshot incomplete; job marked failed");
            JobState::Failed
        };
        self.finish(worker, lease, state).await
    }

    /// One inbox append per receiver, all in flight at once. A receiver the
    /// store refuses for good (an invalid id that slipped into a topic)
    /// is skipped with a warning; anything else fails the chunk.
    async fn append_chunk(&self, lease: &Lease, receivers: &[String]) -> Result<()> {
        let appends = receivers.iter().map(|user| async move {
            let mut draft = lease.job.message.draft_for(lease.job.id, user);
            // Each receiver's `in_app` for the topic counts too.
            draft.topic = Some(lease.job.topic.clone());
            (
                user,
                self.store.append(&StreamKey::inbox(user), draft).await,
            )
        });
        let mut stored = 0;
        let mut failure = None;
        let mut armed = Vec::new();
        for (user, result) in join_all(appends).await {
            match result {
                Ok(message) => {
                    stored += 1;
                    armed.extend(self.fallback_event(lease, user, message.id));
                }
                Err(e @ CoreError::Unavailable(_)) => failure = Some(e),
                // Muted by the receiver: done with them.
                Err(CoreError::Skipped(_)) => {}
                Err(e) => {
                    tracing::warn!(job = %lease.job.id, user, %e, "fan-out: receiver skipped")
                }
            }
        }
        if let Some(o) = &self.observer {
            o.appended(stored);
        }
        self.arm(armed).await;
        failure.map_or(Ok(()), Err)
    }

    /// The fallback webhook event of `user`'s copy `id` of the job's
    /// message, if it has a fallback and this node arms them.
    fn fallback_event(&self, lease: &Lease, user: &str, id: uuid::Uuid) -> Option<WebhookEvent> {
        self.fallback.as_ref()?;
        let after = Duration::from_secs(lease.job.message.fallback_after_secs?);
        let mut event = WebhookEvent::armed(user, id, crate::unix_ms(), after);
        event.topic = Some(lease.job.topic.clone());
        Some(event)
    }

    /// Arms `events` (a chunk's), best effort as the sender does: a chunk
    /// appended again (its worker died) finds them armed and arms nothing.
    async fn arm(&self, events: Vec<WebhookEvent>) {
        let (Some(queue), false) = (&self.fallback, events.is_empty()) else {
            return;
        };
        if let Err(e) = queue.arm(&events).await {
            tracing::warn!(%e, events = events.len(), "fan-out: fallback webhooks not armed");
        }
    }

    async fn finish(&self, worker: &str, lease: &Lease, state: JobState) -> Outcome {
        self.retry(lease, || self.queue.finish(lease, worker, state))
            .await;
        tracing::debug!(job = %lease.job.id, state = state.as_str(), "fan-out job ended");
        Outcome::Finished(state)
    }

    /// Runs `step` until it succeeds, pausing longer after each failure.
    async fn retry<T, F, Fut>(&self, lease: &Lease, mut step: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut pause = Duration::from_millis(20);
        loop {
            match step().await {
                Ok(value) => return value,
                Err(e) => {
                    tracing::warn!(job = %lease.job.id, %e, "fan-out step failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
            }
        }
    }

    /// Sleeps as long as `appended` messages since `started` are ahead of
    /// the configured rate.
    async fn keep_rate(&self, started: Instant, appended: u64) {
        let rate = self.settings.rate_per_sec;
        if rate == 0 {
            return;
        }
        let due = started + Duration::from_secs_f64(appended as f64 / f64::from(rate));
        tokio::time::sleep_until(due).await;
    }
}
