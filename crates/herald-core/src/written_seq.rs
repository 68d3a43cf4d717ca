//! Exactly-once, in-order delivery on one connection.

use herald_protocol::Stream;

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

/// A [`WrittenSeq`] for each stream of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WrittenSeqs([WrittenSeq; Stream::ALL.len()]);

impl WrittenSeqs {
    pub fn get(&self, stream: Stream) -> WrittenSeq {
        self.0[stream.index()]
    }

    pub fn get_mut(&mut self, stream: Stream) -> &mut WrittenSeq {
        &mut self.0[stream.index()]
    }
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
}
