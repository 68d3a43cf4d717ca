//! Publishing to a topic: fan-out on write, run as a durable job.
//!
//! `POST /v1/topics/{topic}/messages` becomes a [`Job`](crate::Job): the
//! backend's [`JobQueue`](crate::JobQueue) snapshots the topic's
//! subscribers and queues the job in one step, so "every subscriber at
//! publish time" is fixed before the caller hears 202. Any node's
//! [`worker`] then takes the job and walks the snapshot in chunks,
//! appending one inbox message per receiver through the ordinary (batched)
//! append path, which also pushes it live.
//!
//! Exactly once per (job, receiver): each receiver's message id is
//! [`message_id`](crate::backend::message_id)`(job, receiver)`, and the
//! store refuses to append an id a stream already holds
//! ([`Store::append`](crate::Store::append)). So a job picked up again
//! after its node died half-way — the worker records how far it got after
//! each chunk, and the queue hands a job whose worker went quiet to
//! another — appends the rest, and re-appends of the last chunk are no-ops.

mod publisher;
pub mod worker;

use crate::backend::JobState;

pub use publisher::{FanOut, FanOutSettings, Published};

/// What a node counts of its fan-out work (its metrics).
pub trait JobObserver: Send + Sync + 'static {
    /// This node's worker took a job.
    fn started(&self);
    /// This node's worker ended a job it held (or lost it to another).
    fn ended(&self, state: Option<JobState>);
    /// Messages appended (or found stored by an earlier try of the chunk).
    fn appended(&self, messages: u64);
}
