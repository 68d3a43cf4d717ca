//! Durable fan-out jobs: a publish to a topic, queued with a snapshot of
//! its subscribers, that any node's worker takes and walks (the service is
//! [`FanOut`](crate::FanOut)).

use std::time::Duration;

use async_trait::async_trait;
use herald_protocol::{Category, Severity};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;
use crate::model::Draft;

/// What a job appends to each receiver's inbox: the message without its
/// id (each receiver's is [`message_id`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    pub category: Category,
    /// Absent: normal (and in jobs queued before severities existed).
    #[serde(default, skip_serializing_if = "Severity::is_normal")]
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub from: Option<String>,
    pub title: Option<String>,
    pub body: String,
    pub data: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Each receiver's message collapses with their unread one of this
    /// group (absent in jobs queued before collapse existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// Nobody may mute it (see [`Draft::critical`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    /// The category's operator default of `in_app` (see
    /// [`Draft::in_app_default`]; true in messages queued before it).
    #[serde(default = "on", skip_serializing_if = "Clone::clone")]
    pub in_app_default: bool,
    /// Seconds after its append an unread copy raises the fallback webhook
    /// (see [`Draft::fallback_after`]; absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_after_secs: Option<u64>,
    /// Action buttons (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<herald_protocol::Action>,
}

fn on() -> bool {
    true
}

impl JobMessage {
    pub fn from_draft(draft: Draft) -> Self {
        JobMessage {
            category: draft.category,
            severity: draft.severity,
            tags: draft.tags,
            from: draft.from,
            title: draft.title,
            body: draft.body,
            data: draft.data,
            ts: draft.ts,
            expires_at: draft.expires_at,
            group_key: draft.group_key,
            critical: draft.critical,
            in_app_default: draft.in_app_default,
            fallback_after_secs: draft.fallback_after.map(|d| d.as_secs()),
            actions: draft.actions,
        }
    }

    /// The draft `receiver` gets from job `job`.
    pub fn draft_for(&self, job: Uuid, receiver: &str) -> Draft {
        Draft {
            id: message_id(job, receiver),
            category: self.category.clone(),
            severity: self.severity,
            tags: self.tags.clone(),
            from: self.from.clone(),
            title: self.title.clone(),
            body: self.body.clone(),
            data: self.data.clone(),
            ts: self.ts,
            expires_at: self.expires_at,
            group_key: self.group_key.clone(),
            critical: self.critical,
            in_app_default: self.in_app_default,
            topic: None,
            fallback_after: self.fallback_after_secs.map(std::time::Duration::from_secs),
            actions: self.actions.clone(),
        }
    }
}

/// The id of the message job `job` gives `receiver`: a name-based (v5)
/// UUID in the job id's namespace, the same on every node and every try.
pub fn message_id(job: Uuid, receiver: &str) -> Uuid {
    Uuid::new_v5(&job, receiver.as_bytes())
}

/// A publish to a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub topic: String,
    pub message: JobMessage,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Accepted, no worker has taken it yet.
    Queued,
    Running,
    /// Every receiver of the snapshot has the message.
    Done,
    /// Given up (see [`FanOutSettings::max_attempts`](crate::FanOutSettings::max_attempts)); `done` says how far
    /// it got.
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            _ => return None,
        })
    }
}

/// What `GET /v1/jobs/{id}` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: Uuid,
    pub topic: String,
    pub state: JobState,
    /// Receivers in the snapshot.
    pub total: u64,
    /// Receivers whose message is stored (the snapshot's first `done`).
    pub done: u64,
}

/// A job a worker holds.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job: Job,
    pub total: u64,
    /// Where the previous holder got to (0 for a fresh job).
    pub done: u64,
    /// How many times the job was handed to a worker, this time included.
    pub attempts: u32,
    /// The backend's handle on the job (e.g. a stream entry id).
    pub handle: String,
}

/// Durable jobs, shared by every node of a backend.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Snapshots the subscribers of `job.topic`, less `exclude` (the
    /// publisher), then queues the job; returns the snapshot's size. A job
    /// with nobody to reach is `Done` at once and never queued.
    async fn enqueue(&self, job: &Job, exclude: Option<&str>) -> Result<u64>;

    /// Hands `worker` a job: first one whose worker stopped recording
    /// progress for the queue's claim timeout (it died), else a new one.
    /// `None` when there is none.
    async fn take(&self, worker: &str) -> Result<Option<Lease>>;

    /// Up to `limit` receivers of the snapshot from position `from` (the
    /// snapshot's order is fixed).
    async fn receivers(&self, lease: &Lease, from: u64, limit: usize) -> Result<Vec<String>>;

    /// Records that the snapshot's first `done` receivers have their
    /// message, and that `worker` is alive. False when the job is no longer
    /// this worker's (another took it over): stop working on it.
    async fn progress(&self, lease: &Lease, worker: &str, done: u64) -> Result<bool>;

    /// Ends the job in `state` (`Done` or `Failed`), if it is still this
    /// worker's; the snapshot goes, the status stays for a day.
    async fn finish(&self, lease: &Lease, worker: &str, state: JobState) -> Result<()>;

    /// The job's status; `None` if unknown (or finished over a day ago).
    async fn status(&self, id: Uuid) -> Result<Option<JobStatus>>;

    /// Jobs queued or running, on every node together.
    async fn backlog(&self) -> Result<u64>;

    /// Forgets the workers, other than those in `keep` (the caller, and
    /// the nodes presence knows alive), that hold no job and did nothing
    /// for `idle`: a backend that keeps an entry per worker (Redis's
    /// consumer group) would otherwise keep one for every node that ever
    /// died. A worker holding a job is never forgotten (whether it holds
    /// one is checked in the same atomic step as the removal), so a dead
    /// node's worker goes once its jobs were taken over. A live worker
    /// forgotten while idle is known again at its next `take`. Returns how
    /// many were forgotten.
    async fn forget_idle_workers(&self, idle: Duration, keep: &[String]) -> Result<u64>;

    /// How many workers the queue keeps a record of and how many jobs they
    /// hold, on every node together; `None` for a backend without a
    /// record per worker.
    async fn workers(&self) -> Result<Option<WorkerCounts>> {
        Ok(None)
    }
}

/// What [`JobQueue::workers`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerCounts {
    /// Workers known (Redis: consumers in the group), dead ones included
    /// until they are forgotten.
    pub workers: u64,
    /// Jobs handed to a worker and not finished (Redis: pending entries).
    pub pending: u64,
}

/// How long a finished job's status stays readable.
pub const STATUS_KEPT: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_depend_on_job_and_receiver_only() {
        let job = Uuid::now_v7();
        assert_eq!(message_id(job, "alice"), message_id(job, "alice"));
        assert_ne!(message_id(job, "alice"), message_id(job, "bob"));
        assert_ne!(
            message_id(job, "alice"),
            message_id(Uuid::now_v7(), "alice")
        );
    }

    #[test]
    fn states_round_trip() {
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Failed,
        ] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
    }
}
