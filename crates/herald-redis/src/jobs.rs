//! Fan-out jobs on Redis: a stream with a consumer group, so any node may
//! work on a job and a job whose worker died is claimed by another.
//!
//! - `{jobs}:stream`: one entry (`job` = id) per queued job, consumer
//!   group `fanout`, one consumer per node (its node id). An entry stays
//!   pending while its worker runs it; the worker's progress resets its
//!   idle time (XCLAIM … JUSTID, which does not count a delivery), so an
//!   entry idle past the claim timeout belongs to a worker that died, and
//!   XAUTOCLAIM hands it to the next node that looks for work.
//! - `{jobs}:job:<id>`: a hash: `topic`, `message` (JSON), `total`,
//!   `done`, `state`. Same tag as the stream, so taking a job, recording
//!   progress (only by the entry's current owner) and finishing it are
//!   each one script. Kept for a day after the job ends.
//! - `{t:<topic>}:job:<id>`: the snapshot of the topic's subscribers, a
//!   copy (COPY) of `{t:<topic>}:subs` made at publish time: same tag as
//!   the topic, so the copy is one atomic command. Immutable, so workers
//!   page it by rank. Deleted when the job ends.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::interfaces::{KeysInterface, SortedSetsInterface};
use fred::prelude::Value;
use herald_core::backend::{
    Job, JobMessage, JobQueue, JobState, JobStatus, Lease, WorkerCounts, STATUS_KEPT,
};
use herald_core::{CoreError, Result};
use uuid::Uuid;

use crate::script::Script;
use crate::{unavailable, Shared};

/// The consumer group every node reads the job stream in.
const GROUP: &str = "fanout";
/// How long a snapshot may wait for its job to run (then it is lost: the
/// job fails rather than reach a partial list).
const SNAPSHOT_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// [`JobQueue`] on Redis, shared by every node on the same Redis and key
/// prefix.
pub struct RedisJobs {
    shared: Arc<Shared>,
    claim_after: Duration,
    snapshot: Script,
    enqueue: Script,
    take: Script,
    progress: Script,
    finish: Script,
    forget_idle: Script,
    group: Script,
}

impl RedisJobs {
    pub(crate) fn new(shared: Arc<Shared>, claim_after: Duration) -> Self {
        RedisJobs {
            shared,
            claim_after,
            snapshot: Script::new("jobs_snapshot"),
            enqueue: Script::new("jobs_enqueue"),
            take: Script::new("jobs_take"),
            progress: Script::new("jobs_progress"),
            finish: Script::new("jobs_finish"),
            forget_idle: Script::new("jobs_forget_idle"),
            group: Script::new("jobs_group"),
        }
    }

    fn owner_args(&self, lease: &Lease, worker: &str) -> Vec<Value> {
        vec![GROUP.into(), worker.into(), lease.handle.as_str().into()]
    }
}

fn millis(d: Duration) -> Value {
    Value::from(d.as_millis().min(i64::MAX as u128) as i64)
}

fn corrupt(what: impl std::fmt::Display) -> CoreError {
    CoreError::Unavailable(format!("redis: fan-out job unreadable: {what}"))
}

/// A TAKE reply: entry id, job id, deliveries, topic, message, total, done.
fn parse_lease(reply: Vec<Value>) -> Result<Lease> {
    let text = |i: usize| -> Result<String> {
        reply
            .get(i)
            .and_then(|v| v.as_string())
            .ok_or_else(|| corrupt(format!("field {i}")))
    };
    let number = |i: usize| -> Result<u64> {
        text(i)?
            .parse()
            .map_err(|e| corrupt(format!("field {i}: {e}")))
    };
    let id = Uuid::parse_str(&text(1)?).map_err(corrupt)?;
    let message: JobMessage = serde_json::from_str(&text(4)?).map_err(corrupt)?;
    Ok(Lease {
        job: Job {
            id,
            topic: text(3)?,
            message,
        },
        total: number(5)?,
        done: number(6)?,
        attempts: number(2)?.min(u32::MAX as u64) as u32,
        handle: text(0)?,
    })
}

#[async_trait]
impl JobQueue for RedisJobs {
    async fn enqueue(&self, job: &Job, exclude: Option<&str>) -> Result<u64> {
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let total: u64 = self
            .snapshot
            .run(
                pool.next(),
                vec![
                    keys.topic_subscribers(&job.topic),
                    keys.job_snapshot(&job.topic, job.id),
                ],
                vec![exclude.unwrap_or("").into(), millis(SNAPSHOT_KEPT)],
            )
            .await?;
        let message = serde_json::to_string(&job.message).map_err(corrupt)?;
        let _: i64 = self
            .enqueue
            .run(
                pool.next(),
                vec![keys.job(job.id), keys.job_stream()],
                vec![
                    job.id.to_string().into(),
                    job.topic.as_str().into(),
                    message.into(),
                    Value::from(total as i64),
                    millis(STATUS_KEPT),
                ],
            )
            .await?;
        Ok(total)
    }

    async fn take(&self, worker: &str) -> Result<Option<Lease>> {
        let keys = &self.shared.keys;
        let reply: Option<Vec<Value>> = self
            .take
            .run(
                self.shared.pool.next(),
                keys.job_stream(),
                vec![
                    GROUP.into(),
                    worker.into(),
                    millis(self.claim_after),
                    keys.job_prefix().into(),
                ],
            )
            .await?;
        reply.map(parse_lease).transpose()
    }

    async fn receivers(&self, lease: &Lease, from: u64, limit: usize) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = from.min(i64::MAX as u64) as i64;
        let stop = start.saturating_add(limit as i64 - 1);
        self.shared
            .pool
            .zrange(
                self.shared
                    .keys
                    .job_snapshot(&lease.job.topic, lease.job.id),
                start,
                stop,
                None,
                false,
                None,
                false,
            )
            .await
            .map_err(unavailable)
    }

    async fn progress(&self, lease: &Lease, worker: &str, done: u64) -> Result<bool> {
        let keys = &self.shared.keys;
        let mut args = self.owner_args(lease, worker);
        args.push(Value::from(done as i64));
        let recorded: i64 = self
            .progress
            .run(
                self.shared.pool.next(),
                vec![keys.job_stream(), keys.job(lease.job.id)],
                args,
            )
            .await?;
        Ok(recorded == 1)
    }

    async fn finish(&self, lease: &Lease, worker: &str, state: JobState) -> Result<()> {
        let keys = &self.shared.keys;
        let mut args = self.owner_args(lease, worker);
        args.push(state.as_str().into());
        args.push(millis(STATUS_KEPT));
        let ended: i64 = self
            .finish
            .run(
                self.shared.pool.next(),
                vec![keys.job_stream(), keys.job(lease.job.id)],
                args,
            )
            .await?;
        if ended == 1 {
            let _: i64 = self
                .shared
                .pool
                .unlink(keys.job_snapshot(&lease.job.topic, lease.job.id))
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Finished jobs leave the stream (XDEL), so its length is the backlog.
    async fn backlog(&self) -> Result<u64> {
        fred::interfaces::StreamsInterface::xlen(&self.shared.pool, self.shared.keys.job_stream())
            .await
            .map_err(unavailable)
    }

    async fn forget_idle_workers(&self, idle: Duration, keep: &[String]) -> Result<u64> {
        let mut args = vec![GROUP.into(), millis(idle)];
        args.extend(keep.iter().map(|k| Value::from(k.as_str())));
        self.forget_idle
            .run(
                self.shared.pool.next(),
                vec![self.shared.keys.job_stream()],
                args,
            )
            .await
    }

    /// The group's consumers (one per node that took a job and was not
    /// forgotten) and its pending entries (jobs being worked on).
    async fn workers(&self) -> Result<Option<WorkerCounts>> {
        let counts: Vec<u64> = self
            .group
            .run(
                self.shared.pool.next(),
                vec![self.shared.keys.job_stream()],
                vec![GROUP.into()],
            )
            .await?;
        let [workers, pending] = <[u64; 2]>::try_from(counts).map_err(|_| corrupt("group"))?;
        Ok(Some(WorkerCounts { workers, pending }))
    }

    async fn status(&self, id: Uuid) -> Result<Option<JobStatus>> {
        let fields: Vec<Option<String>> = fred::interfaces::HashesInterface::hmget(
            &self.shared.pool,
            self.shared.keys.job(id),
            vec!["topic", "state", "total", "done"],
        )
        .await
        .map_err(unavailable)?;
        let [Some(topic), Some(state), Some(total), Some(done)] =
            <[Option<String>; 4]>::try_from(fields).map_err(|_| corrupt("status"))?
        else {
            return Ok(None);
        };
        Ok(Some(JobStatus {
            id,
            topic,
            state: JobState::parse(&state).ok_or_else(|| corrupt("state"))?,
            total: total.parse().map_err(corrupt)?,
            done: done.parse().map_err(corrupt)?,
        }))
    }
}
