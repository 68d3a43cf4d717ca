//! Fan-out jobs in process: a queue and a status map behind one lock.
//! Nothing here outlives the process, so there is no takeover: a job is
//! held by the one worker that took it until it finishes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use uuid::Uuid;

use super::topics::MemoryTopics;
use crate::backend::{Job, JobQueue, JobState, JobStatus, Lease, STATUS_KEPT};
use crate::error::Result;

/// [`JobQueue`] for the in-memory backend; share the node's
/// [`MemoryTopics`] with it.
pub struct MemoryJobs {
    topics: Arc<MemoryTopics>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<Uuid, Entry>,
    queued: VecDeque<Uuid>,
}

struct Entry {
    job: Job,
    receivers: Vec<String>,
    total: u64,
    state: JobState,
    done: u64,
    holder: Option<String>,
    finished: Option<Instant>,
}

impl MemoryJobs {
    pub fn new(topics: Arc<MemoryTopics>) -> Self {
        MemoryJobs {
            topics,
            state: Mutex::default(),
        }
    }
}

impl Entry {
    fn status(&self) -> JobStatus {
        JobStatus {
            id: self.job.id,
            topic: self.job.topic.clone(),
            state: self.state,
            total: self.total,
            done: self.done,
        }
    }

    fn held_by(&self, worker: &str) -> bool {
        self.holder.as_deref() == Some(worker) && self.finished.is_none()
    }
}

#[async_trait]
impl JobQueue for MemoryJobs {
    async fn enqueue(&self, job: &Job, exclude: Option<&str>) -> Result<u64> {
        let mut receivers = self.topics.snapshot(&job.topic);
        if let Some(publisher) = exclude {
            receivers.retain(|u| u != publisher);
        }
        let total = receivers.len() as u64;
        let mut state = self.state.lock().unwrap();
        state
            .jobs
            .retain(|_, e| e.finished.is_none_or(|t| t.elapsed() < STATUS_KEPT));
        let empty = receivers.is_empty();
        state.jobs.insert(
            job.id,
            Entry {
                job: job.clone(),
                receivers,
                total,
                state: if empty {
                    JobState::Done
                } else {
                    JobState::Queued
                },
                done: 0,
                holder: None,
                finished: empty.then(Instant::now),
            },
        );
        if !empty {
            state.queued.push_back(job.id);
        }
        Ok(total)
    }

    async fn take(&self, worker: &str) -> Result<Option<Lease>> {
        let mut state = self.state.lock().unwrap();
        let Some(id) = state.queued.pop_front() else {
            return Ok(None);
        };
        let entry = state.jobs.get_mut(&id).expect("a queued job has an entry");
        entry.state = JobState::Running;
        entry.holder = Some(worker.to_owned());
        Ok(Some(Lease {
            job: entry.job.clone(),
            total: entry.total,
            done: entry.done,
            attempts: 1,
            handle: id.to_string(),
        }))
    }

    async fn receivers(&self, lease: &Lease, from: u64, limit: usize) -> Result<Vec<String>> {
        let state = self.state.lock().unwrap();
        let Some(entry) = state.jobs.get(&lease.job.id) else {
            return Ok(Vec::new());
        };
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        Ok(entry
            .receivers
            .iter()
            .skip(from)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn progress(&self, lease: &Lease, worker: &str, done: u64) -> Result<bool> {
        let mut state = self.state.lock().unwrap();
        match state.jobs.get_mut(&lease.job.id) {
            Some(entry) if entry.held_by(worker) => {
                entry.done = done;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn finish(&self, lease: &Lease, worker: &str, job_state: JobState) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        if let Some(entry) = state.jobs.get_mut(&lease.job.id) {
            if entry.held_by(worker) {
                entry.state = job_state;
                if job_state == JobState::Done {
                    entry.done = entry.total;
                }
                entry.receivers = Vec::new();
                entry.finished = Some(Instant::now());
            }
        }
        Ok(())
    }

    async fn backlog(&self) -> Result<u64> {
        let state = self.state.lock().unwrap();
        Ok(state.jobs.values().filter(|e| e.finished.is_none()).count() as u64)
    }

    /// Nothing to forget: the jobs live in one process with its one worker.
    async fn forget_idle_workers(&self, _idle: Duration, _keep: &[String]) -> Result<u64> {
        Ok(0)
    }

    async fn status(&self, id: Uuid) -> Result<Option<JobStatus>> {
        let state = self.state.lock().unwrap();
        Ok(state.jobs.get(&id).map(Entry::status))
    }
}
