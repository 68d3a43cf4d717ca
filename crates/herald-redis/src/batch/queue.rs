//! The append queue: pending operations per lane, which lanes are ready or
//! have a batch in flight, and how much one batch takes (see the module doc
//! of `batch.rs`).

use std::collections::{HashMap, HashSet, VecDeque};

use super::op::PendingAppend;

/// Most appends one sender takes at once: one script call's, or on a
/// Cluster those of the several lanes' scripts it sends together.
pub(super) const MAX_APPENDS_PER_SEND: usize = 64;
/// A batch stops growing past this many payload bytes (it always takes at
/// least one append), so that one script never holds Redis for long.
const MAX_BATCH_BYTES: usize = 256 * 1024;

#[derive(Default)]
pub(super) struct Queue {
    /// Pending appends per lane, oldest first.
    by_lane: HashMap<u16, VecDeque<PendingAppend>>,
    /// Lanes with pending appends and no batch in flight, in serving order.
    ready: VecDeque<u16>,
    /// Lanes with a batch in flight.
    busy: HashSet<u16>,
    /// Batches being sent (tasks running `AppendBatcher::drive`).
    pub(super) in_flight: usize,
}

impl Queue {
    pub(super) fn push(&mut self, lane: u16, append: PendingAppend) {
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
    pub(super) fn take_batches(&mut self, lanes: usize) -> Vec<(u16, Vec<PendingAppend>)> {
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
    pub(super) fn done(&mut self, lane: u16) {
        self.busy.remove(&lane);
        if self.by_lane.contains_key(&lane) {
            self.ready.push_back(lane);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use herald_core::Result;
    use tokio::sync::oneshot;

    use super::*;
    use crate::batch::op::{Appended, InboxArgs};

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
