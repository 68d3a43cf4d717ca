//! Group commit for appends: concurrent [`crate::RedisStore`] appends are
//! queued and sent together, up to [`MAX_APPENDS_PER_SEND`] in one
//! `append_many` function call, each caller getting its own seq back through
//! a oneshot.
//!
//! fred never pipelines `FCALL`, so one function call per message costs a round
//! trip and a read and write syscall pair in Redis for every message. Here a
//! batch is sent as soon as a slot is free (at most `pool_size` batches in
//! flight): when idle an append goes out at once, alone; appends arriving
//! while batches are in flight wait for the next free slot and go together.
//!
//! Appends are queued per *lane* and each lane has at most one batch in
//! flight, so appends to one stream reach Redis in the order they were
//! queued (a connection may pipeline several `send`s to one user, and two
//! batches on two pool connections could otherwise overtake each other).
//! On a Redis Cluster every key of a script must be in one hash slot, so a
//! lane is a hash slot, and with one hash tag per user a lane's batch is
//! mostly one message. There a sender takes the batches of many ready lanes
//! at once (up to [`MAX_APPENDS_PER_SEND`] appends in all) and sends their
//! scripts together, so that the scripts bound for one node share its
//! connection's writes and reads instead of each waiting for a free sender. Standalone
//! and Sentinel have `pool_size` lanes (slot modulo pool size), so one
//! script's batch mixes users and all connections stay busy.
//!
//! A batch also carries the sender's side of private messages (`touch_peer`:
//! the sender's conversation list, another user's key), which would
//! otherwise cost a script call of its own per message. Off a Cluster a
//! touch rides the lane of the receiver's keys, where the message's append
//! is queued, so the two go in one call (a touch is a `ZADD GT`: its order
//! against other writes does not matter); on a Cluster it must go to its
//! own slot.
//!
//! Batches are sent by spawned tasks, never by the callers, so a caller whose
//! future is dropped leaves the others alone: its message still goes if it
//! was already taken into a batch, and is skipped if it was still queued.

mod op;
mod queue;

use std::sync::{Arc, Mutex, MutexGuard};

use fred::prelude::Value;
use herald_core::{CoreError, Result};
use tokio::sync::oneshot;

pub(crate) use op::{Appended, InboxArgs, PendingAppend};
use queue::{Queue, MAX_APPENDS_PER_SEND};

use crate::Shared;

/// This node's clock in unix µs, as `APPEND_MANY` takes it: the time its
/// entries are stamped with (retention by age) and private messages move
/// conversations to. The gateway's clock, as the message's `ts` is; asking
/// Redis (`TIME` in the script) cost a command and the conversions of its
/// reply on every call.
fn now_us() -> String {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000).to_string()
}

/// The append queue of one store and the tasks that drain it.
pub(crate) struct AppendBatcher {
    shared: Arc<Shared>,
    queue: Mutex<Queue>,
    /// Batches in flight at most: one per pool connection.
    max_in_flight: usize,
    /// Lanes when not on a Cluster (there, every slot is a lane).
    lanes: u16,
    /// Script arguments common to every message: max entries, max age ms.
    max_entries: String,
    max_age_ms: String,
}

impl AppendBatcher {
    pub(crate) fn new(shared: Arc<Shared>, max_entries: String, max_age_ms: String) -> Self {
        let max_in_flight = shared.settings.pool_size.max(1);
        AppendBatcher {
            shared,
            queue: Mutex::default(),
            max_in_flight,
            lanes: max_in_flight.min(u16::MAX as usize) as u16,
            max_entries,
            max_age_ms,
        }
    }

    /// Lanes one sender takes at once: on a Cluster, as many as fit in a
    /// batch (see the module doc); elsewhere one, whose batch mixes users.
    fn lanes_per_send(&self) -> usize {
        if self.shared.sharded {
            MAX_APPENDS_PER_SEND
        } else {
            1
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; a poisoned queue is intact.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one append and waits for its seq.
    pub(crate) async fn append(self: &Arc<Self>, mut append: PendingAppend) -> Result<Appended> {
        let (tx, rx) = oneshot::channel();
        append.reply = Some(tx);
        let lane = if self.shared.sharded {
            append.slot
        } else {
            append.lane_slot % self.lanes
        };
        let start = {
            let mut queue = self.lock();
            queue.push(lane, append);
            if queue.in_flight < self.max_in_flight {
                queue.in_flight += 1;
                true
            } else {
                false
            }
        };
        if start {
            let batcher = self.clone();
            tokio::spawn(async move { batcher.drive().await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(CoreError::Unavailable(
                "redis: append batch abandoned (shutting down)".into(),
            ))
        })
    }

    /// Sends batches until the queue is empty. Counted in `in_flight` from
    /// its spawn; the count is given back under the same lock that found the
    /// queue empty, so an append queued meanwhile always has a sender.
    async fn drive(self: Arc<Self>) {
        let mut guard = InFlight {
            batcher: &self,
            held: true,
            lanes: Vec::new(),
        };
        loop {
            let mut batches = {
                let mut queue = self.lock();
                let batches = queue.take_batches(self.lanes_per_send());
                if batches.is_empty() {
                    queue.in_flight -= 1;
                    guard.held = false;
                    return;
                }
                batches
            };
            guard.lanes = batches.iter().map(|(lane, _)| *lane).collect();
            let client = self.shared.pool.next();
            let results = futures_util::future::join_all(
                batches.iter().map(|(_, batch)| self.send(client, batch)),
            )
            .await;
            // Free the lanes before answering, so that an append its caller
            // makes on hearing back finds its lane open.
            {
                let mut queue = self.lock();
                for lane in guard.lanes.drain(..) {
                    queue.done(lane);
                }
            }
            for ((_, batch), result) in batches.iter_mut().zip(results) {
                match result {
                    Ok(seqs) => {
                        for (append, seq) in batch.iter_mut().zip(seqs) {
                            append.answer(Ok(seq));
                        }
                    }
                    Err(err) => {
                        for append in batch.iter_mut() {
                            append.answer(Err(err.clone()));
                        }
                    }
                }
            }
        }
    }

    /// One `APPEND_MANY` call for the batch; the seqs in the batch's order.
    async fn send(
        &self,
        client: &fred::clients::Client,
        batch: &[PendingAppend],
    ) -> Result<Vec<Appended>> {
        let mut keys = Vec::with_capacity(batch.len());
        let mut args: Vec<Value> = Vec::with_capacity(4 + batch.len() * 9);
        args.push(self.max_entries.as_str().into());
        args.push(self.max_age_ms.as_str().into());
        args.push(if self.shared.sharded { "1" } else { "0" }.into());
        args.push(now_us().into());
        for append in batch {
            append.push_args(&mut args);
            keys.push(append.prefix.clone());
        }
        // Commands are tried once (see `RedisSettings::builder`): if the
        // connection drops after the script was sent, a retry could append
        // the messages twice. Every caller gets `Unavailable` and decides.
        let seqs: Vec<Value> = self
            .shared
            .scripts
            .append_many
            .run(client, keys, args)
            .await?;
        if seqs.len() != batch.len() {
            return Err(CoreError::Unavailable(format!(
                "redis: append script returned {} seqs for {} messages",
                seqs.len(),
                batch.len()
            )));
        }
        seqs.into_iter().map(Appended::from_value).collect()
    }
}

/// Gives a sender's `in_flight` count and its busy lanes back if its task
/// ends abnormally (panic, or cancelled when the runtime shuts down); appends
/// still queued are then taken by the next sender.
struct InFlight<'a> {
    batcher: &'a AppendBatcher,
    held: bool,
    lanes: Vec<u16>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.held {
            let mut queue = self.batcher.lock();
            queue.in_flight -= 1;
            for lane in self.lanes.drain(..) {
                queue.done(lane);
            }
        }
    }
}
