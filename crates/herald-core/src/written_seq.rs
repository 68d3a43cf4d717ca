//! Exactly-once, in-order delivery on one connection.

use herald_protocol::Stream;
use uuid::Uuid;

/// The highest seq of one stream already written to one connection (not to
/// be confused with a device's acknowledged cursor, which the store keeps).
///
/// Live deliveries and store reads can overlap (a message published while the
/// backlog is read arrives both ways) or leave holes (a publish lost while the
/// broker reconnected). `judge` turns both into the right action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WrittenSeq(pub u64);

/// What to do with a message of seq `n` given what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Already written: drop it.
    Duplicate,
    /// Exactly the next one: write it.
    Next,
    /// Messages `(after, n)` are missing: read them from the store first.
    Gap { after: u64 },
}

impl WrittenSeq {
    pub fn judge(self, seq: u64) -> Verdict {
        if seq <= self.0 {
            Verdict::Duplicate
        } else if seq == self.0 + 1 {
            Verdict::Next
        } else {
            Verdict::Gap { after: self.0 }
        }
    }

    /// Records that `seq` was written (never moves backwards).
    pub fn advance(&mut self, seq: u64) {
        self.0 = self.0.max(seq);
    }
}

/// A [`WrittenSeq`] for each stream of one connection, with the id of the
/// message written at it when known.
///
/// The id is what tells a store that went back (a failover lost its newest
/// messages, so new ones take their seqs again) from one that did not:
/// seqs alone cannot, once the new messages have passed the old position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WrittenSeqs {
    seqs: [WrittenSeq; Stream::ALL.len()],
    ids: [Option<Uuid>; Stream::ALL.len()],
}

impl WrittenSeqs {
    pub fn get(&self, stream: Stream) -> WrittenSeq {
        self.seqs[stream.index()]
    }

    /// The id of the message at [`get`](Self::get)'s seq, when this
    /// connection wrote it.
    pub fn last_id(&self, stream: Stream) -> Option<Uuid> {
        self.ids[stream.index()]
    }

    /// Starts `stream` at `seq` (a cursor, a `sync`'s `since`): which
    /// message is there is not known.
    pub fn set(&mut self, stream: Stream, seq: u64) {
        self.seqs[stream.index()] = WrittenSeq(seq);
        self.ids[stream.index()] = None;
    }

    /// Moves past `seq` without writing it (expired, or dropped by
    /// retention). Never moves backwards.
    pub fn advance(&mut self, stream: Stream, seq: u64) {
        if seq > self.get(stream).0 {
            self.set(stream, seq);
        }
    }

    /// Records that message `id` at `seq` was written.
    pub fn wrote(&mut self, stream: Stream, seq: u64, id: Uuid) {
        if seq >= self.get(stream).0 {
            self.seqs[stream.index()] = WrittenSeq(seq);
            self.ids[stream.index()] = Some(id);
        }
    }
}

/// Whether a store's stream went back behind a position: its newest seq
/// `last` is below `position`, or the message it holds at `position`
/// (`theirs`, its id) is not the one written or received there (`ours`).
/// Without both ids only the seqs compare.
pub fn went_back(position: u64, ours: Option<Uuid>, last: u64, theirs: Option<Uuid>) -> bool {
    last < position || matches!((ours, theirs), (Some(ours), Some(theirs)) if ours != theirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_duplicates_next_and_gaps() {
        let c = WrittenSeq(5);
        assert_eq!(c.judge(3), Verdict::Duplicate);
        assert_eq!(c.judge(5), Verdict::Duplicate);
        assert_eq!(c.judge(6), Verdict::Next);
        assert_eq!(c.judge(9), Verdict::Gap { after: 5 });
        let mut c = c;
        c.advance(4);
        assert_eq!(c, WrittenSeq(5));
        c.advance(6);
        assert_eq!(c, WrittenSeq(6));
    }

    #[test]
    fn a_store_went_back_when_it_is_behind_or_holds_another_message_at_the_position() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut w = WrittenSeqs::default();
        w.wrote(Stream::Inbox, 7, a);
        assert_eq!(w.get(Stream::Inbox), WrittenSeq(7));
        let back = |w: &WrittenSeqs, last, theirs| {
            went_back(
                w.get(Stream::Inbox).0,
                w.last_id(Stream::Inbox),
                last,
                theirs,
            )
        };
        assert!(!back(&w, 7, Some(a)));
        assert!(!back(&w, 9, Some(a)));
        assert!(back(&w, 6, None), "behind our position");
        assert!(back(&w, 9, Some(b)), "another message at 7");
        assert!(!back(&w, 9, None), "7 not there (retention): unknown");
        w.advance(Stream::Inbox, 8);
        assert_eq!(w.last_id(Stream::Inbox), None, "8 was not written");
        assert!(!back(&w, 9, Some(b)), "unknown id: only seqs compare");
        w.set(Stream::Inbox, 3);
        assert_eq!(
            (w.get(Stream::Inbox), w.last_id(Stream::Inbox)),
            (WrittenSeq(3), None)
        );
    }
}
