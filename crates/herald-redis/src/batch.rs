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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use fred::prelude::Value;
use herald_core::{CoreError, Result};
use herald_protocol::Message;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::Shared;

/// Most appends one sender takes at once: one script call's, or on a
/// Cluster those of the several lanes' scripts it sends together.
pub(crate) const MAX_APPENDS_PER_SEND: usize = 64;
/// A batch stops growing past this many payload bytes (it always takes at
/// least one append), so that one script never holds Redis for long.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// One queued operation of `APPEND_MANY`: the script's keys and its
/// arguments.
pub(crate) struct PendingAppend {
    /// Hash slot of the keys.
    pub(crate) slot: u16,
    /// The slot whose lane it rides when not on a Cluster: its own, but a
    /// touch's is its peer's (the receiver of the private message), so that
    /// it goes in the receiver's append's call (see the module doc).
    lane_slot: u16,
    /// The prefix of its keys, the function's one key for it
    /// (`Keys::stream_prefix`): an append's stream's, a touch's sender's;
    /// `append_many` names the keys from it.
    pub(crate) prefix: String,
    op: Op,
    reply: Option<oneshot::Sender<Result<Appended>>>,
}

/// The arguments of an append that only an inbox message may use (empty
/// when unused): the sender of a private message, checked against the
/// receiver's block list, and the collapse group.
#[derive(Debug, Default)]
pub(crate) struct InboxArgs {
    pub(crate) from: String,
    pub(crate) group: String,
    /// The receiver's preferences check (see `APPEND_MANY`): `-` none (a
    /// critical message; not an inbox), `1` the category is on unless the
    /// user turned it off, `0` off unless the user turned it on.
    pub(crate) check: &'static str,
    /// The topic it was published to (a fan-out), whose `in_app` counts
    /// too; empty otherwise.
    pub(crate) topic: String,
}

impl InboxArgs {
    fn checked(&self) -> bool {
        matches!(self.check, "0" | "1")
    }
}

/// What the script answered for one operation: the seq (0 for a refused
/// private message or a touch), and for a message that replaced the open
/// item of its collapse group how many it stands for and the id replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) seq: u64,
    /// The receiver's preferences kept it out (the script's -1).
    pub(crate) skipped: bool,
    pub(crate) collapsed: Option<(u32, Uuid)>,
}

impl Appended {
    /// One element of `APPEND_MANY`'s reply: a seq, or {seq, n, id}.
    fn from_value(value: Value) -> Result<Self> {
        let bad = || CoreError::Unavailable("redis: unexpected append reply".into());
        match value {
            Value::Integer(-1) => Ok(Appended {
                seq: 0,
                skipped: true,
                collapsed: None,
            }),
            Value::Integer(seq) => Ok(Appended {
                seq: u64::try_from(seq).map_err(|_| bad())?,
                skipped: false,
                collapsed: None,
            }),
            Value::Array(parts) => {
                let [Value::Integer(seq), Value::Integer(n), Value::Bytes(id)] = &parts[..] else {
                    return Err(bad());
                };
                Ok(Appended {
                    seq: u64::try_from(*seq).map_err(|_| bad())?,
                    skipped: false,
                    collapsed: Some((
                        u32::try_from(*n).map_err(|_| bad())?,
                        Uuid::from_slice(id).map_err(|_| bad())?,
                    )),
                })
            }
            _ => Err(bad()),
        }
    }
}

/// This node's clock in unix µs, as `APPEND_MANY` takes it: the time its
/// entries are stamped with (retention by age) and private messages move
/// conversations to. The gateway's clock, as the message's `ts` is; asking
/// Redis (`TIME` in the script) cost a command and the conversions of its
/// reply on every call.
fn now_us() -> String {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000).to_string()
}

/// What a [`PendingAppend`] does.
enum Op {
    /// Store, count and publish a message.
    Append(Append),
    /// Move `peer` to the top of a conversation list at `at_us`.
    TouchPeer { peer: String, at_us: i64 },
}

/// An append's arguments (see `APPEND_MANY`).
struct Append {
    /// What `append_many` is told it is (`append_kind` in the Lua): the
    /// stream and which of the optional arguments follow.
    kind: String,
    head: Bytes,
    tail: Bytes,
    /// The category, `<category>:<severity>` for a severity other than
    /// normal (category names have no ':').
    category: String,
    /// The message id, for the stream's id index.
    id: Uuid,
    /// The message's `expires_at` in unix ms for the stream's expiry index
    /// (see [`crate::store::expiry_ms`]); 0 when it has none.
    expires_ms: i64,
    /// What only an inbox message may carry.
    inbox: InboxArgs,
}

impl Append {
    /// Its kind (see `append_kind` in `lua/append_many.lua`): `i` an inbox
    /// or `a` the `all` stream, then `p` private, `g` grouped, `c` checked,
    /// `s` a severe announcement.
    fn kind(inbox: bool, severe: bool, args: &InboxArgs) -> String {
        let mut kind = String::with_capacity(4);
        kind.push(if inbox { 'i' } else { 'a' });
        for (flag, on) in [
            ('p', !args.from.is_empty()),
            ('g', !args.group.is_empty()),
            ('c', args.checked()),
            ('s', severe && !inbox),
        ] {
            if on {
                kind.push(flag);
            }
        }
        kind
    }
}

impl PendingAppend {
    /// An append to the stream of keys `prefix` (slot `slot`); `inbox`
    /// whether it is a user's inbox, not the `all` stream.
    pub(crate) fn new(
        slot: u16,
        prefix: String,
        inbox: bool,
        head: Bytes,
        tail: Bytes,
        message: &Message,
        args: InboxArgs,
    ) -> Self {
        PendingAppend {
            slot,
            lane_slot: slot,
            prefix,
            op: Op::Append(Append {
                kind: Append::kind(inbox, !message.severity.is_normal(), &args),
                head,
                tail,
                category: if message.severity.is_normal() {
                    message.category.to_string()
                } else {
                    format!("{}:{}", message.category, message.severity)
                },
                id: message.id,
                expires_ms: crate::store::expiry_ms(message.expires_at),
                inbox: args,
            }),
            reply: None,
        }
    }

    /// `peer` to the top of the conversation list of the user whose keys
    /// start with `prefix` (slot `slot`) at `at_us`; answered with 0.
    /// `lane_slot` is the slot of the peer's keys, whose lane it rides
    /// when not on a Cluster (on a Cluster its own).
    pub(crate) fn touch_peer(
        slot: u16,
        lane_slot: u16,
        prefix: String,
        peer: String,
        at_us: i64,
    ) -> Self {
        PendingAppend {
            slot,
            lane_slot,
            prefix,
            op: Op::TouchPeer { peer, at_us },
            reply: None,
        }
    }

    fn size(&self) -> usize {
        match &self.op {
            Op::Append(a) => a.head.len() + a.tail.len() + a.category.len() + 100,
            Op::TouchPeer { peer, .. } => peer.len() + 100,
        }
    }

    /// Its arguments (see `lua/append_many.lua`): its kind, then five for
    /// an append and those of the optional ones its kind names, two for a
    /// touch (no unused ones: each costs Redis a Lua string per call).
    fn push_args(&self, args: &mut Vec<Value>) {
        match &self.op {
            Op::Append(a) => {
                args.push(a.kind.as_str().into());
                args.push(Value::Bytes(a.head.clone()));
                args.push(Value::Bytes(a.tail.clone()));
                args.push(a.category.as_str().into());
                args.push(Value::Bytes(Bytes::copy_from_slice(a.id.as_bytes())));
                args.push(a.expires_ms.to_string().into());
                let inbox = &a.inbox;
                if !inbox.from.is_empty() {
                    args.push(inbox.from.as_str().into());
                }
                if !inbox.group.is_empty() {
                    args.push(inbox.group.as_str().into());
                }
                if inbox.checked() {
                    args.push(format!("{}{}", inbox.check, inbox.topic).into());
                }
            }
            Op::TouchPeer { peer, at_us } => {
                args.push("t".into());
                args.push(peer.as_str().into());
                args.push(at_us.to_string().into());
            }
        }
    }

    fn abandoned(&self) -> bool {
        self.reply.as_ref().is_none_or(|tx| tx.is_closed())
    }

    fn answer(&mut self, result: Result<Appended>) {
        if let Some(tx) = self.reply.take() {
            // The caller may be gone; its message was appended all the same.
            let _ = tx.send(result);
        }
    }
}

#[derive(Default)]
struct Queue {
    /// Pending appends per lane, oldest first.
    by_lane: HashMap<u16, VecDeque<PendingAppend>>,
    /// Lanes with pending appends and no batch in flight, in serving order.
    ready: VecDeque<u16>,
    /// Lanes with a batch in flight.
    busy: HashSet<u16>,
    /// Batches being sent (tasks running [`AppendBatcher::drive`]).
    in_flight: usize,
}

impl Queue {
    fn push(&mut self, lane: u16, append: PendingAppend) {
        let queue = self.by_lane.entry(lane).or_default();
        if queue.is_empty() && !self.busy.contains(&lane) {
            self.ready.push_back(lane);
        }
        queue.push_back(append);
    }

    /// Up to `limit` appends of the first ready lane, skipping those
    /// whose caller is gone; the lane is busy until [`Queue::done`]. `None`
    /// when no lane is ready.
    fn take_batch(&mut self, limit: usize) -> Option<(u16, Vec<PendingAppend>)> {
        while let Some(lane) = self.ready.pop_front() {
            let Some(queue) = self.by_lane.get_mut(&lane) else {
                continue;
            };
            let mut batch = Vec::new();
            let mut bytes = 0;
            while batch.len() < limit {
                let Some(next) = queue.front() else { break };
                if next.abandoned() {
                    queue.pop_front();
                    continue;
                }
                if !batch.is_empty() && bytes + next.size() > MAX_BATCH_BYTES {
                    break;
                }
                bytes += next.size();
                batch.extend(queue.pop_front());
            }
            if queue.is_empty() {
                self.by_lane.remove(&lane);
            }
            if !batch.is_empty() {
                self.busy.insert(lane);
                return Some((lane, batch));
            }
        }
        None
    }

    /// The batches of up to `lanes` ready lanes, [`MAX_APPENDS_PER_SEND`]
    /// appends in all; empty when no lane is ready.
    fn take_batches(&mut self, lanes: usize) -> Vec<(u16, Vec<PendingAppend>)> {
        let mut batches = Vec::new();
        let mut taken = 0;
        while batches.len() < lanes && taken < MAX_APPENDS_PER_SEND {
            let Some((lane, batch)) = self.take_batch(MAX_APPENDS_PER_SEND - taken) else {
                break;
            };
            taken += batch.len();
            batches.push((lane, batch));
        }
        batches
    }

    /// The lane's batch is answered: its next appends may go.
    fn done(&mut self, lane: u16) {
        self.busy.remove(&lane);
        if self.by_lane.contains_key(&lane) {
            self.ready.push_back(lane);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(slot: u16, body: usize) -> (PendingAppend, oneshot::Receiver<Result<Appended>>) {
        let (tx, rx) = oneshot::channel();
        let message = herald_core::Draft::new(herald_protocol::Category::REMIND, "")
            .into_message(herald_protocol::Stream::Inbox, 0);
        let mut p = PendingAppend::new(
            slot,
            "p:".into(),
            true,
            Bytes::from(vec![0u8; body]),
            Bytes::new(),
            &message,
            InboxArgs::default(),
        );
        p.reply = Some(tx);
        (p, rx)
    }

    #[test]
    fn batches_hold_one_lane_in_arrival_order_one_at_a_time() {
        let mut q = Queue::default();
        let mut keep = Vec::new();
        for i in 0..10u16 {
            let (p, rx) = pending(i, 1);
            keep.push(rx);
            q.push(i % 2, p);
        }
        let (lane, first) = q.take_batch(MAX_APPENDS_PER_SEND).unwrap();
        assert_eq!(lane, 0);
        let slots: Vec<u16> = first.iter().map(|p| p.slot).collect();
        assert_eq!(slots, vec![0, 2, 4, 6, 8]);
        // Lane 0 is busy: what arrives for it now waits for its batch.
        let (p, rx) = pending(10, 1);
        keep.push(rx);
        q.push(0, p);
        let (lane, second) = q.take_batch(MAX_APPENDS_PER_SEND).unwrap();
        assert_eq!((lane, second.len()), (1, 5));
        assert!(q.take_batch(MAX_APPENDS_PER_SEND).is_none());
        q.done(1);
        assert!(q.take_batch(MAX_APPENDS_PER_SEND).is_none());
        q.done(0);
        let (lane, third) = q.take_batch(MAX_APPENDS_PER_SEND).unwrap();
        assert_eq!((lane, third[0].slot), (0, 10));
        q.done(0);
        assert!(q.take_batch(MAX_APPENDS_PER_SEND).is_none());
        assert!(q.by_lane.is_empty() && q.ready.is_empty() && q.busy.is_empty());
    }

    #[test]
    fn a_sender_takes_many_lanes_up_to_one_batch_of_appends() {
        let mut q = Queue::default();
        let mut keep = Vec::new();
        for i in 0..(MAX_APPENDS_PER_SEND as u16 + 6) {
            let (p, rx) = pending(i, 1);
            keep.push(rx);
            q.push(i % 70, p);
        }
        let first = q.take_batches(MAX_APPENDS_PER_SEND);
        let taken: usize = first.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(taken, MAX_APPENDS_PER_SEND);
        assert_eq!(
            first.len(),
            MAX_APPENDS_PER_SEND,
            "one append from each of the first lanes"
        );
        // The rest (lanes 64..69) go with the next sender; a lane in flight
        // is not taken twice.
        let second = q.take_batches(MAX_APPENDS_PER_SEND);
        let lanes: Vec<u16> = second.iter().map(|(l, _)| *l).collect();
        assert_eq!(lanes, (64..70).collect::<Vec<_>>());
        assert!(q.take_batches(MAX_APPENDS_PER_SEND).is_empty());
        // One lane per sender when asked for one.
        for (lane, _) in first.iter().chain(&second) {
            q.done(*lane);
        }
        let (p, rx) = pending(0, 1);
        keep.push(rx);
        q.push(0, p);
        let (p, rx) = pending(1, 1);
        keep.push(rx);
        q.push(1, p);
        assert_eq!(q.take_batches(1).len(), 1);
    }

    #[test]
    fn batches_are_bounded_and_skip_abandoned_callers() {
        let mut q = Queue::default();
        let mut keep = Vec::new();
        for i in 0..(MAX_APPENDS_PER_SEND + 10) {
            let (p, rx) = pending(0, 1);
            if i % 2 == 0 {
                keep.push(rx); // the others are dropped: abandoned
            }
            q.push(0, p);
        }
        let (_, batch) = q.take_batch(MAX_APPENDS_PER_SEND).unwrap();
        assert_eq!(batch.len(), (MAX_APPENDS_PER_SEND + 10) / 2);
        q.done(0);
        assert!(q.take_batch(MAX_APPENDS_PER_SEND).is_none());

        let (big, _rx1) = pending(0, MAX_BATCH_BYTES);
        let (small, _rx2) = pending(0, 1);
        q.push(0, big);
        q.push(0, small);
        assert_eq!(q.take_batch(MAX_APPENDS_PER_SEND).unwrap().1.len(), 1);
        q.done(0);
        assert_eq!(q.take_batch(MAX_APPENDS_PER_SEND).unwrap().1.len(), 1);
    }
}
