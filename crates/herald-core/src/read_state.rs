//! Read state: what each user did with each message, kept sparsely.
//!
//! A user's marks on one stream are two watermarks plus exceptions: every
//! seq up to `read_upto` is read, every seq up to `seen_upto` at least seen,
//! the rest unseen — unless an exception for that seq says otherwise. So a
//! user who reads everything costs two numbers however many messages there
//! are, and an announcement stored once in the `all` stream is unread for
//! every user (including one who never connected) until that user marks it,
//! with nothing stored per user before that.
//!
//! This module is pure: the transitions and the bookkeeping. The backends
//! store [`ReadState`] and apply a [`ReadChange`] atomically if nobody else
//! changed the state meanwhile (compare-and-set on `version`); the
//! [`crate::Inbox`] service does the rest.

use std::collections::BTreeMap;

use herald_protocol::{MarkState, MessageState, Severity, Stream};

/// How far a message was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    #[default]
    Unseen,
    Seen,
    Read,
}

/// One message's state for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    pub level: Level,
    pub archived: bool,
    pub deleted: bool,
    /// Expired and already un-counted (inbox): never counted, shown or
    /// changed again, and not un-counted a second time when retention
    /// drops it.
    pub expired: bool,
    /// Snoozed: not counted, left out of history unless asked for, until
    /// its wake-up ([`StreamMarks::snoozed`] says when) makes it unseen
    /// again. A `read`, `archived` or `deleted` mark ends it.
    pub snoozed: bool,
}

impl Flags {
    /// Counted in the unread badge of its category.
    pub fn counts_unread(self) -> bool {
        self.visible() && !self.archived && !self.snoozed && self.level < Level::Read
    }

    fn visible(self) -> bool {
        !self.deleted && !self.expired
    }

    /// Counted in `unseen_total`.
    pub fn counts_unseen(self) -> bool {
        self.visible() && !self.archived && !self.snoozed && self.level == Level::Unseen
    }

    /// The state after `mark`. A deleted or expired message never changes
    /// again.
    pub fn apply(self, mark: MarkState) -> Flags {
        if !self.visible() {
            return self;
        }
        let mut next = self;
        match mark {
            MarkState::Seen => next.level = next.level.max(Level::Seen),
            MarkState::Read => {
                next.level = Level::Read;
                next.snoozed = false;
            }
            MarkState::Unread if self.level == Level::Read => next.level = Level::Seen,
            MarkState::Unread => {}
            MarkState::Archived => {
                next.archived = true;
                next.snoozed = false;
            }
            MarkState::Unarchived => next.archived = false,
            MarkState::Deleted => {
                next.deleted = true;
                next.snoozed = false;
            }
            MarkState::Snoozed => next.snoozed = true,
        }
        next
    }

    /// The state after a snooze ended: unseen (new again), not archived.
    /// An expired message stays out (it was not counted while snoozed and
    /// is never counted again).
    pub fn woken(self) -> Flags {
        if !self.visible() {
            return Flags {
                snoozed: false,
                ..self
            };
        }
        Flags::default()
    }

    /// As history shows it; `None` for a deleted or expired message (not
    /// shown).
    pub fn public(self) -> Option<MessageState> {
        match self {
            f if !f.visible() => None,
            Flags { snoozed: true, .. } => Some(MessageState::Snoozed),
            Flags { archived: true, .. } => Some(MessageState::Archived),
            Flags { level, .. } => Some(match level {
                Level::Unseen => MessageState::Unseen,
                Level::Seen => MessageState::Seen,
                Level::Read => MessageState::Read,
            }),
        }
    }

    /// A small integer for storage: level + 4 × archived + 8 × deleted +
    /// 16 × expired + 32 × snoozed. (The Redis scripts that un-count a
    /// message read it: any code of 4 or more is not counted.)
    pub fn code(self) -> u8 {
        self.level as u8
            + 4 * self.archived as u8
            + 8 * self.deleted as u8
            + 16 * self.expired as u8
            + 32 * self.snoozed as u8
    }

    pub fn from_code(code: u8) -> Flags {
        Flags {
            level: match code & 3 {
                0 => Level::Unseen,
                1 => Level::Seen,
                _ => Level::Read,
            },
            archived: code & 4 != 0,
            deleted: code & 8 != 0,
            expired: code & 16 != 0,
            snoozed: code & 32 != 0,
        }
    }
}

/// One user's marks on one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamMarks {
    /// Every seq up to this is at least seen (unless an exception says not).
    pub seen_upto: u64,
    /// Every seq up to this is read (unless an exception says not).
    pub read_upto: u64,
    /// Seqs whose state differs from what the watermarks say.
    pub exceptions: BTreeMap<u64, Flags>,
    /// When each snoozed message (an exception with `snoozed`) wakes up,
    /// unix ms.
    pub snoozed: BTreeMap<u64, i64>,
    /// The action button the user pressed on each message they acted on
    /// (its id). Set once: an act on a seq held here is refused, and the
    /// act's compare-and-set on the version makes the first of two
    /// concurrent acts the only one. Kept apart from the flags, which
    /// watermarks fold away.
    pub acted: BTreeMap<u64, String>,
}

impl StreamMarks {
    /// What the watermarks alone say about `seq`.
    fn default_flags(&self, seq: u64) -> Flags {
        let level = if seq <= self.read_upto {
            Level::Read
        } else if seq <= self.seen_upto {
            Level::Seen
        } else {
            Level::Unseen
        };
        Flags {
            level,
            ..Flags::default()
        }
    }

    pub fn flags(&self, seq: u64) -> Flags {
        self.exceptions
            .get(&seq)
            .copied()
            .unwrap_or_else(|| self.default_flags(seq))
    }

    /// Records `flags` for `seq`, keeping only what the watermarks do not
    /// already say.
    pub fn set(&mut self, seq: u64, flags: Flags) {
        if !flags.snoozed {
            self.snoozed.remove(&seq);
        }
        if flags == self.default_flags(seq) {
            self.exceptions.remove(&seq);
        } else {
            self.exceptions.insert(seq, flags);
        }
    }

    /// Moves the read watermark (and the seen one with it) up to `seq`: the
    /// caller has marked every message up to `seq` read. Exceptions that
    /// only said "read" vanish.
    pub fn raise_read(&mut self, seq: u64) {
        self.raise(seq, true);
    }

    /// Moves the seen watermark up to `seq` (every message up to it is at
    /// least seen now).
    pub fn raise_seen(&mut self, seq: u64) {
        self.raise(seq, false);
    }

    fn raise(&mut self, seq: u64, read: bool) {
        let before: Vec<(u64, Flags)> = self
            .exceptions
            .range(..=seq)
            .map(|(s, f)| (*s, *f))
            .collect();
        if read {
            self.read_upto = self.read_upto.max(seq);
        }
        self.seen_upto = self.seen_upto.max(seq).max(self.read_upto);
        for (s, f) in before {
            self.set(s, f);
        }
    }

    /// Messages of `(first..=last)` that count as unread / unseen, in
    /// O(exceptions): the stream's retained range, for the `all` stream
    /// whose counts are derived rather than kept.
    pub fn count_in(&self, first: u64, last: u64) -> (u64, u64) {
        if last < first {
            return (0, 0);
        }
        let span = |from: u64| last.saturating_sub(from.max(first.saturating_sub(1)));
        let mut unread = span(self.read_upto);
        let mut unseen = span(self.seen_upto.max(self.read_upto));
        for (&seq, &flags) in self.exceptions.range(first..=last) {
            let default = self.default_flags(seq);
            unread = unread + flags.counts_unread() as u64 - default.counts_unread() as u64;
            unseen = unseen + flags.counts_unseen() as u64 - default.counts_unseen() as u64;
        }
        (unread, unseen)
    }

    /// Forgets exceptions for seqs below `first` (dropped by retention).
    pub fn forget_below(&mut self, first: u64) {
        self.exceptions = self.exceptions.split_off(&first);
        self.snoozed = self.snoozed.split_off(&first);
        self.acted = self.acted.split_off(&first);
    }

    /// Snoozes `seq` (flags from [`Flags::apply`] with `Snoozed`) until
    /// `until` (unix ms).
    pub fn snooze(&mut self, seq: u64, flags: Flags, until: i64) {
        self.set(seq, flags);
        self.snoozed.insert(seq, until);
    }

    /// The soonest wake-up of a snoozed message, unix ms.
    pub fn next_wake(&self) -> Option<i64> {
        self.snoozed.values().min().copied()
    }
}

/// A user's marks on every stream, with the version the store keeps for
/// compare-and-set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadState {
    pub version: u64,
    pub streams: [StreamMarks; Stream::ALL.len()],
}

impl ReadState {
    pub fn marks(&self, stream: Stream) -> &StreamMarks {
        &self.streams[stream.index()]
    }

    pub fn marks_mut(&mut self, stream: Stream) -> &mut StreamMarks {
        &mut self.streams[stream.index()]
    }

    /// What must be written to turn `self` into `next`: changed watermarks
    /// and exceptions only.
    pub fn diff(&self, next: &ReadState) -> Vec<MarksUpdate> {
        let mut updates = Vec::new();
        for stream in Stream::ALL {
            let (old, new) = (self.marks(stream), next.marks(stream));
            if old.seen_upto != new.seen_upto {
                updates.push(MarksUpdate::SeenUpto(stream, new.seen_upto));
            }
            if old.read_upto != new.read_upto {
                updates.push(MarksUpdate::ReadUpto(stream, new.read_upto));
            }
            for (&seq, &flags) in &new.exceptions {
                if old.exceptions.get(&seq) != Some(&flags) {
                    updates.push(MarksUpdate::Set(stream, seq, flags));
                }
            }
            for &seq in old.exceptions.keys() {
                if !new.exceptions.contains_key(&seq) {
                    updates.push(MarksUpdate::Unset(stream, seq));
                }
            }
            for (&seq, &until) in &new.snoozed {
                if old.snoozed.get(&seq) != Some(&until) {
                    updates.push(MarksUpdate::Until(stream, seq, Some(until)));
                }
            }
            for &seq in old.snoozed.keys() {
                if !new.snoozed.contains_key(&seq) {
                    updates.push(MarksUpdate::Until(stream, seq, None));
                }
            }
            for (&seq, action) in &new.acted {
                if old.acted.get(&seq) != Some(action) {
                    updates.push(MarksUpdate::Acted(stream, seq, Some(action.clone())));
                }
            }
            for &seq in old.acted.keys() {
                if !new.acted.contains_key(&seq) {
                    updates.push(MarksUpdate::Acted(stream, seq, None));
                }
            }
        }
        updates
    }
}

/// One write to a user's stored marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarksUpdate {
    SeenUpto(Stream, u64),
    ReadUpto(Stream, u64),
    Set(Stream, u64, Flags),
    Unset(Stream, u64),
    /// A snoozed message's wake-up (unix ms), or none any more.
    Until(Stream, u64, Option<i64>),
    /// The action taken on a message, or none any more (retention dropped
    /// the message).
    Acted(Stream, u64, Option<String>),
}

/// A change to apply atomically if the stored version is still
/// `expect_version`: the marks to write and what it does to the kept inbox
/// counts, per message. Updates and deltas of inbox messages that retention
/// dropped in the meantime are skipped by the store: the trim un-counted
/// them by their old flags already. (Trims do not move the version, so a
/// mark on a full inbox under traffic is not refused over and over.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadChange {
    pub expect_version: u64,
    pub updates: Vec<MarksUpdate>,
    pub deltas: Vec<CountDelta>,
    /// What the store tells every node holding the user, in the same
    /// atomic step: `None`, that the counts changed
    /// ([`BrokerSink::counts_changed`](crate::BrokerSink::counts_changed));
    /// else this `changed` frame too (snoozes that ended), which the
    /// connections write before reading the counts again.
    pub changed: Option<herald_protocol::Changed>,
}

/// What a state change of one inbox message does to the kept counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountDelta {
    pub seq: u64,
    pub category: String,
    /// Added to the category's kept unread count.
    pub unread: i64,
    /// Added to the category's kept unseen count.
    pub unseen: i64,
    /// The message's severity: unless `normal`, `unread` is added to the
    /// category's kept count of that severity too (normal is what is left,
    /// so a common message costs nothing more).
    pub severity: Severity,
}

impl ReadChange {
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }

    /// Nothing to apply and nothing to tell: committing it only bumps the
    /// version (no push; see [`Store::commit_read_state`](crate::Store::commit_read_state)).
    pub fn is_bare(&self) -> bool {
        self.updates.is_empty() && self.deltas.is_empty() && self.changed.is_none()
    }
}

/// The inbox numbers the store keeps up to date on every append, mark,
/// expiry and retention trim, per category name, as of `last_seq` (the
/// inbox's newest seq read in the same atomic step).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptCounts {
    pub unread: BTreeMap<String, i64>,
    pub unseen: BTreeMap<String, i64>,
    /// Unread per category and severity, in the order of
    /// [`Severity::ALL`], for the severities other than `normal` (its slot
    /// stays 0: normal is the category's unread less the others).
    pub severe: BTreeMap<String, [i64; 4]>,
    pub last_seq: u64,
    /// The soonest expiry still pending in the inbox (the counts change
    /// then).
    pub next_expiry: Option<time::OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_state_machine() {
        let unseen = Flags::default();
        let seen = unseen.apply(MarkState::Seen);
        assert_eq!(seen.level, Level::Seen);
        let read = seen.apply(MarkState::Read);
        assert_eq!(read.apply(MarkState::Seen), read, "seen never lowers read");
        assert_eq!(read.apply(MarkState::Unread), seen);
        assert_eq!(unseen.apply(MarkState::Unread), unseen);
        let archived = unseen.apply(MarkState::Archived);
        assert!(!archived.counts_unread() && !archived.counts_unseen());
        assert_eq!(archived.public(), Some(MessageState::Archived));
        assert_eq!(archived.apply(MarkState::Unarchived), unseen);
        let deleted = read.apply(MarkState::Deleted);
        assert_eq!(deleted.apply(MarkState::Unarchived), deleted);
        assert_eq!(deleted.public(), None);
        for code in 0..32u8 {
            let f = Flags::from_code(code);
            if code & 3 != 3 {
                assert_eq!(f.code(), code);
            }
        }
    }

    #[test]
    fn watermarks_and_exceptions_count_like_a_recount() {
        let mut m = StreamMarks::default();
        m.raise_read(10);
        m.set(3, Flags::default()); // unread again below the watermark
        m.set(
            12,
            Flags {
                level: Level::Read,
                ..Flags::default()
            },
        );
        m.set(
            14,
            Flags {
                archived: true,
                ..Flags::default()
            },
        );
        let recount = |first: u64, last: u64| {
            (first..=last).fold((0, 0), |(u, s), seq| {
                let f = m.flags(seq);
                (u + f.counts_unread() as u64, s + f.counts_unseen() as u64)
            })
        };
        for (first, last) in [(1, 20), (5, 20), (11, 13), (13, 12), (15, 15)] {
            assert_eq!(
                m.count_in(first, last),
                recount(first, last),
                "{first}..={last}"
            );
        }
        // Raising the watermark drops exceptions it makes redundant.
        m.raise_read(12);
        assert!(!m.exceptions.contains_key(&12));
        assert!(m.exceptions.contains_key(&3) && m.exceptions.contains_key(&14));
        m.forget_below(4);
        assert!(!m.exceptions.contains_key(&3));
    }

    #[test]
    fn diff_writes_only_what_changed() {
        let old = ReadState::default();
        let mut new = old.clone();
        new.marks_mut(Stream::Inbox).raise_read(5);
        new.marks_mut(Stream::All)
            .set(2, Flags::default().apply(MarkState::Archived));
        let diff = old.diff(&new);
        assert_eq!(
            diff,
            vec![
                MarksUpdate::SeenUpto(Stream::Inbox, 5),
                MarksUpdate::ReadUpto(Stream::Inbox, 5),
                MarksUpdate::Set(Stream::All, 2, Flags::default().apply(MarkState::Archived)),
            ]
        );
        assert!(new.diff(&new).is_empty());
    }
}
