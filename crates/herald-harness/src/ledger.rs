//! What one device received of one stream, over all its connections, and
//! what was wrong with it — the device half of the exactly-once check
//! ([`crate::check`](mod@crate::check) is the other).
//!
//! The protocol's promise is per device: every accepted message arrives,
//! each seq once per connection, in order. A device dedups by seq (a new
//! connection replays from the acknowledged cursor, which may lag), so the
//! ledger tells the harmless repeats the protocol allows from real faults:
//!
//! - **doubled**: a seq twice on one connection that no `sync` asked for
//!   (the per-connection exactly-once of the gateway's `WrittenSeq`);
//! - **gaps**: a seq past the next one expected (a half-written message, or
//!   a delivery that skipped a seq);
//! - **seq reused**: one seq arriving with two different ids;
//! - **id reused**: one id arriving under two seqs (a message stored twice);
//! - information only: **redelivered** (a new connection starting below
//!   what the device had, because its acknowledged cursor lagged) and
//!   **resent by sync** (a `sync`'s replay of what the connection had just
//!   written live).
//!
//! A `reset` (the store went back after a lossy failover) makes the device
//! forget the seqs above the reset's: they may come again with other
//! messages. What it had and gets again is recognised by id, as the
//! protocol says, and counted apart (`resent_after_reset`).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The faults and repeats one device saw; added up over devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    pub doubled: u64,
    pub gaps: u64,
    pub seq_reused: u64,
    pub id_reused: u64,
    pub redelivered: u64,
    pub resent_by_sync: u64,
}

impl Faults {
    pub fn add(&mut self, o: &Faults) {
        self.doubled += o.doubled;
        self.gaps += o.gaps;
        self.seq_reused += o.seq_reused;
        self.id_reused += o.id_reused;
        self.redelivered += o.redelivered;
        self.resent_by_sync += o.resent_by_sync;
    }

    /// None of the faults that break exactly-once (repeats the protocol
    /// allows do not count).
    pub fn clean(&self) -> bool {
        self.doubled == 0 && self.gaps == 0 && self.seq_reused == 0 && self.id_reused == 0
    }
}

/// One connection's view of a stream: what it wrote, and the `sync` it
/// sent (its `since`, and whether the reply came).
#[derive(Debug, Default)]
pub struct ConnView {
    seen: HashSet<u64>,
    sync: Option<(u64, bool)>,
}

impl ConnView {
    /// This connection asked for everything after `since`.
    pub fn synced_from(&mut self, since: u64) {
        self.sync = Some((since, false));
    }

    /// The `sync`'s reply came: its replay is over.
    pub fn sync_answered(&mut self) {
        if let Some(s) = &mut self.sync {
            s.1 = true;
        }
    }
}

/// How a message arrived at the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A seq the device did not have: hand it to the application.
    First,
    /// A seq it had: dropped by the device's dedup (the kind is counted).
    Again,
}

/// How many gaps a log keeps as examples.
const GAP_EXAMPLES: usize = 2;

/// One stream as the device received it.
#[derive(Debug, Default)]
pub struct StreamLog {
    /// The id the device holds at each seq (a `reset` drops the seqs above
    /// its own).
    held: BTreeMap<u64, Uuid>,
    /// Every id handed to the application, with the seq it came with.
    ids: HashMap<Uuid, u64>,
    high: u64,
    pub faults: Faults,
    /// `reset` frames: the store went back.
    pub resets: u64,
    /// Messages the device had, written again after a `reset`.
    pub resent_after_reset: u64,
    /// The first gaps: (seq expected next, seq that came instead).
    pub first_gaps: Vec<(u64, u64)>,
    /// Whether a seq past `high + 1` is a gap. Not for the `all` stream:
    /// a new device gets only the newest announcements there.
    pub track_gaps: bool,
}

impl StreamLog {
    pub fn with_gaps() -> Self {
        StreamLog {
            track_gaps: true,
            ..StreamLog::default()
        }
    }

    /// The highest seq received: where a `sync` resumes from.
    pub fn high(&self) -> u64 {
        self.high
    }

    /// The id the device holds at `seq`, if any (a `sync`'s `since_id`).
    pub fn id_at(&self, seq: u64) -> Option<Uuid> {
        self.held.get(&seq).copied()
    }

    /// Every message handed to the application, as (seq, id), in seq order.
    pub fn received(&self) -> Vec<(u64, Uuid)> {
        let mut all: Vec<(u64, Uuid)> = self.ids.iter().map(|(id, seq)| (*seq, *id)).collect();
        all.sort_unstable();
        all
    }

    /// Records one `message` frame on connection `conn`.
    pub fn record(&mut self, seq: u64, id: Uuid, conn: &mut ConnView) -> Arrival {
        let (arrival, had_id) = match self.held.get(&seq) {
            Some(held) => {
                if *held != id {
                    self.faults.seq_reused += 1;
                }
                (Arrival::Again, false)
            }
            None => {
                self.held.insert(seq, id);
                (Arrival::First, self.hand_over(seq, id))
            }
        };
        if !conn.seen.insert(seq) {
            match conn.sync {
                Some((since, false)) if seq > since => self.faults.resent_by_sync += 1,
                _ => self.faults.doubled += 1,
            }
        } else if arrival == Arrival::Again {
            self.faults.redelivered += 1;
        } else if had_id {
            self.resent_after_reset += 1;
        }
        if self.track_gaps && seq > self.high + 1 {
            self.faults.gaps += 1;
            if self.first_gaps.len() < GAP_EXAMPLES {
                self.first_gaps.push((self.high + 1, seq));
            }
        }
        self.high = self.high.max(seq);
        arrival
    }

    /// Notes `id` at `seq` as handed to the application; whether it had
    /// been, at this seq, before (a resend after a `reset`). At another seq
    /// it is a fault: one message stored twice.
    fn hand_over(&mut self, seq: u64, id: Uuid) -> bool {
        match self.ids.entry(id) {
            Entry::Occupied(had) => {
                if *had.get() != seq {
                    self.faults.id_reused += 1;
                }
                *had.get() == seq
            }
            Entry::Vacant(new) => {
                new.insert(seq);
                false
            }
        }
    }

    /// A `reset` to `seq` on connection `conn`: the store went back, and
    /// the seqs above `seq` may come again with other messages.
    pub fn reset(&mut self, seq: u64, conn: &mut ConnView) {
        self.resets += 1;
        self.high = seq;
        self.held.retain(|s, _| *s <= seq);
        conn.seen.retain(|s| *s <= seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn in_order_on_one_connection_is_clean() {
        let mut log = StreamLog::with_gaps();
        let mut c = ConnView::default();
        for s in 1..=3 {
            assert_eq!(log.record(s, id(s as u128), &mut c), Arrival::First);
        }
        assert_eq!(log.faults, Faults::default());
        assert_eq!(log.high(), 3);
        assert_eq!(log.received().len(), 3);
        assert_eq!(log.id_at(3), Some(id(3)));
    }

    #[test]
    fn a_new_connection_replaying_from_a_lagging_cursor_is_redelivery() {
        let mut log = StreamLog::with_gaps();
        let mut first = ConnView::default();
        log.record(1, id(1), &mut first);
        log.record(2, id(2), &mut first);
        let mut second = ConnView::default();
        assert_eq!(log.record(2, id(2), &mut second), Arrival::Again);
        log.record(3, id(3), &mut second);
        assert_eq!(log.faults.redelivered, 1);
        assert!(log.faults.clean());
    }

    #[test]
    fn twice_on_one_connection_is_doubled_unless_a_sync_asked() {
        let mut log = StreamLog::with_gaps();
        let mut c = ConnView::default();
        log.record(1, id(1), &mut c);
        log.record(2, id(2), &mut c);
        c.synced_from(1);
        log.record(2, id(2), &mut c); // the sync's replay
        assert_eq!((log.faults.resent_by_sync, log.faults.doubled), (1, 0));
        c.sync_answered();
        log.record(2, id(2), &mut c);
        assert_eq!(log.faults.doubled, 1);
        c.synced_from(2);
        log.record(1, id(1), &mut c); // at or below `since`: not asked for
        assert_eq!(log.faults.doubled, 2);
        assert!(!log.faults.clean());
    }

    #[test]
    fn gaps_and_reuse_are_faults() {
        let mut log = StreamLog::with_gaps();
        let mut c = ConnView::default();
        log.record(1, id(1), &mut c);
        log.record(3, id(3), &mut c);
        assert_eq!(log.faults.gaps, 1);
        assert_eq!(log.first_gaps, [(2, 3)]);
        let mut d = ConnView::default();
        log.record(3, id(99), &mut d);
        assert_eq!(log.faults.seq_reused, 1);
        log.record(4, id(1), &mut d);
        assert_eq!(log.faults.id_reused, 1);
        let mut all = StreamLog::default();
        all.record(50, id(50), &mut ConnView::default());
        assert_eq!(all.faults.gaps, 0, "the all stream does not count gaps");
    }

    #[test]
    fn after_a_reset_seqs_come_again_with_other_messages() {
        let mut log = StreamLog::with_gaps();
        let mut c = ConnView::default();
        for s in 1..=4 {
            log.record(s, id(s as u128), &mut c);
        }
        log.reset(2, &mut c);
        assert_eq!((log.resets, log.high(), log.id_at(3)), (1, 2, None));
        // What the store kept comes again, recognised by id; the lost
        // seqs come with new messages.
        assert_eq!(log.record(3, id(3), &mut c), Arrival::First);
        assert_eq!(log.record(4, id(40), &mut c), Arrival::First);
        assert_eq!(log.resent_after_reset, 1);
        assert!(log.faults.clean(), "{:?}", log.faults);
        assert_eq!(log.received().len(), 5, "every message handed over");
    }

    #[test]
    fn faults_add_up() {
        let mut a = Faults {
            doubled: 1,
            redelivered: 2,
            ..Faults::default()
        };
        a.add(&Faults {
            gaps: 3,
            redelivered: 1,
            ..Faults::default()
        });
        assert_eq!((a.doubled, a.gaps, a.redelivered), (1, 3, 3));
    }
}
