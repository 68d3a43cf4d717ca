//! What a connection keeps of the user's counts, and how `Inbox` reads them.

use std::collections::BTreeMap;

use herald_protocol::{Category, Codec, Counts, Message, Severity, Stream, UnreadBySeverity};
use serde::Serialize;
use time::OffsetDateTime;

use super::{snooze, Inbox};
use crate::backend::AnnouncementRange;
use crate::backend::StoredPreferences;
use crate::categories::Categories;
use crate::error::Result;
use crate::model::validate_user_id;
use crate::read_state::{KeptCounts, ReadState, StreamMarks};

/// Counts as of given seqs, kept compactly by a connection (one number per
/// category, names shared): it adds each later delivery itself instead of
/// asking the store again, and encodes its `counts` frame from this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountsSnapshot {
    categories: Categories,
    /// Unread per category, in the order of `categories`.
    unread: Box<[u64]>,
    unread_total: u64,
    unseen_total: u64,
    /// `unread_total` by severity, in the order of [`Severity::ALL`].
    by_severity: [u64; Severity::ALL.len()],
    /// The newest seq of each stream the counts include.
    pub as_of: [u64; Stream::ALL.len()],
    /// The soonest expiry of a message counted since the snapshot was read:
    /// read the counts again then.
    pub stale_at: Option<OffsetDateTime>,
}

impl CountsSnapshot {
    /// Counts a message delivered after the snapshot (a new message is
    /// unseen). Returns false for one the snapshot already includes, or one
    /// that does not count (expired already).
    pub fn add(&mut self, message: &Message) -> bool {
        let as_of = &mut self.as_of[message.stream.index()];
        if message.seq <= *as_of {
            return false;
        }
        *as_of = message.seq;
        if message.expires_at.is_some() && message.expired(OffsetDateTime::now_utc()) {
            return false;
        }
        let Some(i) = self.categories.position(&message.category) else {
            return false;
        };
        self.unread[i] += 1;
        if self.categories.at(i).badge {
            self.unread_total += 1;
            self.unseen_total += 1;
            self.by_severity[message.severity.index()] += 1;
        }
        if let Some(t) = message.expires_at {
            self.stale_at = Some(self.stale_at.map_or(t, |s| s.min(t)));
        }
        true
    }

    /// The `counts` frame's fields, as the API returns them.
    pub fn counts(&self) -> Counts {
        Counts {
            unread: self
                .categories
                .iter()
                .zip(self.unread.iter())
                .map(|(spec, n)| (spec.category.to_string(), *n))
                .collect(),
            unread_total: self.unread_total,
            unseen_total: self.unseen_total,
            unread_by_severity: UnreadBySeverity::from_array(self.by_severity),
        }
    }

    /// The `counts` frame in `codec`, encoded straight from the snapshot.
    pub fn frame(&self, codec: Codec) -> bytes::Bytes {
        match codec {
            Codec::Json => self.json_frame().into(),
            Codec::MsgPack => codec.encode_counts(self),
        }
    }

    /// The JSON `counts` frame, written from the category keys escaped once
    /// (see [`Categories::json_keys`]) and the numbers: a connection writes
    /// one after every delivered message, so it is kept cheap. A unit test
    /// holds it equal to what serde writes.
    pub fn json_frame(&self) -> String {
        let mut out = String::with_capacity(64 + 24 * self.unread.len());
        let mut digits = itoa::Buffer::new();
        out.push_str(r#"{"type":"counts","unread":{"#);
        for (i, (key, n)) in self
            .categories
            .json_keys()
            .iter()
            .zip(self.unread.iter())
            .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str(digits.format(*n));
        }
        out.push_str(r#"},"unread_total":"#);
        out.push_str(digits.format(self.unread_total));
        out.push_str(r#","unseen_total":"#);
        out.push_str(digits.format(self.unseen_total));
        out.push_str(r#","unread_by_severity":{"#);
        for (i, severity) in Severity::ALL.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(severity.as_str());
            out.push_str("\":");
            out.push_str(digits.format(self.by_severity[i]));
        }
        out.push_str("}}");
        out
    }
}

impl Serialize for CountsSnapshot {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeStruct};
        struct Unread<'a>(&'a CountsSnapshot);
        impl Serialize for Unread<'_> {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.unread.len()))?;
                for (spec, n) in self.0.categories.iter().zip(self.0.unread.iter()) {
                    map.serialize_entry(spec.category.as_str(), n)?;
                }
                map.end()
            }
        }
        let mut s = serializer.serialize_struct("Counts", 4)?;
        s.serialize_field("unread", &Unread(self))?;
        s.serialize_field("unread_total", &self.unread_total)?;
        s.serialize_field("unseen_total", &self.unseen_total)?;
        s.serialize_field(
            "unread_by_severity",
            &UnreadBySeverity::from_array(self.by_severity),
        )?;
        s.end()
    }
}

impl Inbox {
    /// The user's unread numbers: the inbox's as kept by the store, the
    /// announcements' derived from the user's marks on the `all` stream.
    /// Expired messages do not count; a category without `badge` is listed
    /// but left out of the totals.
    pub async fn counts(&self, user: &str) -> Result<CountsSnapshot> {
        Ok(self.counts_and_state(user).await?.0)
    }

    /// [`Inbox::counts`] and the user's read state they were derived from.
    pub async fn counts_and_state(&self, user: &str) -> Result<(CountsSnapshot, ReadState)> {
        validate_user_id(user)?;
        let now = OffsetDateTime::now_utc();
        let (kept, state) = self.store.user_counts(user, now).await?;
        self.snapshot(user, now, kept, state).await
    }

    /// [`Inbox::counts_and_state`] and what the user set of their
    /// preferences, when the store reads them in the same step
    /// ([`Store::user_counts_and_preferences`]; `None`: load them
    /// yourself). A connection's start.
    pub async fn counts_state_and_preferences(
        &self,
        user: &str,
    ) -> Result<(CountsSnapshot, ReadState, Option<StoredPreferences>)> {
        validate_user_id(user)?;
        let now = OffsetDateTime::now_utc();
        let (kept, state, stored) = self.store.user_counts_and_preferences(user, now).await?;
        let (snapshot, state) = self.snapshot(user, now, kept, state).await?;
        Ok((snapshot, state, stored))
    }

    /// The counts of `kept` (read at `now`) with the announcements'.
    async fn snapshot(
        &self,
        user: &str,
        mut now: OffsetDateTime,
        mut kept: KeptCounts,
        mut state: ReadState,
    ) -> Result<(CountsSnapshot, ReadState)> {
        // A snooze past its time that no waker ended yet (its node died
        // before registering the wake-up, say) ends now.
        if snooze::wake_due(&state, now) {
            self.wake(user).await?;
            now = OffsetDateTime::now_utc();
            (kept, state) = self.store.user_counts(user, now).await?;
        }
        let all = self.store.announcements(now).await?;
        let marks = state.marks(Stream::All);
        let (mut ann_unread, mut ann_unseen) = marks.count_in(all.first, all.last);
        for &seq in &all.expired {
            let flags = marks.flags(seq);
            ann_unread -= flags.counts_unread() as u64;
            ann_unseen -= flags.counts_unseen() as u64;
        }
        let ann_severe = severe_unread(&all, marks);
        let mut snapshot = CountsSnapshot {
            categories: self.categories.clone(),
            unread: vec![0; self.categories.len()].into_boxed_slice(),
            unread_total: 0,
            unseen_total: 0,
            by_severity: [0; Severity::ALL.len()],
            as_of: [0; Stream::ALL.len()],
            // When a message these counts include expires, they change.
            stale_at: match (kept.next_expiry, all.next_expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        };
        for (i, spec) in self.categories.iter().enumerate() {
            let name = spec.category.as_str();
            let kept_of =
                |map: &BTreeMap<String, i64>| map.get(name).copied().unwrap_or(0).max(0) as u64;
            let (mut unread, mut unseen) = (kept_of(&kept.unread), kept_of(&kept.unseen));
            if spec.category == Category::ANNOUNCEMENT {
                unread += ann_unread;
                unseen += ann_unseen;
            }
            snapshot.unread[i] = unread;
            if spec.badge {
                snapshot.unread_total += unread;
                snapshot.unseen_total += unseen;
                // The severities other than normal, kept (inbox) and
                // derived (announcements); normal is the rest.
                let mut of = kept.severe.get(name).copied().unwrap_or_default();
                for slot in &mut of {
                    *slot = (*slot).max(0);
                }
                if spec.category == Category::ANNOUNCEMENT {
                    for (slot, n) in of.iter_mut().zip(ann_severe) {
                        *slot += n as i64;
                    }
                }
                let mut severe = 0;
                for severity in Severity::ALL.into_iter().filter(|s| !s.is_normal()) {
                    let n = (of[severity.index()] as u64).min(unread - severe);
                    snapshot.by_severity[severity.index()] += n;
                    severe += n;
                }
                snapshot.by_severity[Severity::Normal.index()] += unread - severe;
            }
        }
        snapshot.as_of[Stream::Inbox.index()] = kept.last_seq;
        snapshot.as_of[Stream::All.index()] = all.last;
        Ok((snapshot, state))
    }
}

/// The announcements of each severity other than normal that count as
/// unread for the user of `marks`, in the order of [`Severity::ALL`]
/// (normal's slot stays 0: it is the announcements' unread less these).
/// O(retained severe announcements + their exceptions' lookups): nothing is
/// kept per user, as for the announcements' unread count, so an
/// announcement's severity follows each user's read, delete, archive,
/// snooze and wake-up, its expiry and retention with no write of its own,
/// and a new user or device counts it at once.
fn severe_unread(all: &AnnouncementRange, marks: &StreamMarks) -> [u64; Severity::ALL.len()] {
    let mut by = [0; Severity::ALL.len()];
    for &(seq, severity) in &all.severe {
        let retained = (all.first..=all.last).contains(&seq);
        if retained && all.expired.binary_search(&seq).is_err() && marks.flags(seq).counts_unread()
        {
            by[severity.index()] += 1;
        }
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only retained, unexpired announcements the user's flags count as
    /// unread are counted, each under its severity.
    #[test]
    fn severe_announcements_count_by_the_users_flags() {
        use crate::read_state::Flags;
        use herald_protocol::MarkState;

        let all = AnnouncementRange {
            first: 3,
            last: 9,
            expired: vec![5],
            next_expiry: None,
            severe: vec![
                (1, Severity::Critical), // trimmed
                (4, Severity::High),
                (5, Severity::High), // expired
                (6, Severity::Low),
                (7, Severity::Critical),
                (8, Severity::Critical), // archived
                (10, Severity::High),    // past `last`
            ],
        };
        let mut marks = StreamMarks::default();
        marks.raise_read(6);
        marks.set(4, Flags::default()); // unread again below the watermark
        marks.set(8, Flags::default().apply(MarkState::Archived));
        assert_eq!(severe_unread(&all, &marks), [0, 0, 1, 1]);
        assert_eq!(
            severe_unread(&all, &StreamMarks::default()),
            [1, 0, 1, 2],
            "a user who never marked anything"
        );
    }

    #[test]
    fn a_snapshot_counts_new_messages_and_encodes_the_counts_frame() {
        let categories = Categories::default();
        let mut snapshot = CountsSnapshot {
            unread: vec![0; categories.len()].into_boxed_slice(),
            categories,
            unread_total: 0,
            unseen_total: 0,
            by_severity: [0; 4],
            as_of: [3, 0],
            stale_at: None,
        };
        let mut message = crate::Draft::new(Category::REMIND, "x").into_message(Stream::Inbox, 3);
        assert!(!snapshot.add(&message), "already included");
        message.seq = 4;
        message.expires_at = Some(OffsetDateTime::now_utc() + std::time::Duration::from_secs(60));
        assert!(snapshot.add(&message));
        assert_eq!(snapshot.stale_at, message.expires_at);
        let counts = snapshot.counts();
        assert_eq!(
            (
                counts.unread["remind"],
                counts.unread_total,
                counts.unseen_total
            ),
            (1, 1, 1)
        );
        assert_eq!(
            snapshot.json_frame(),
            String::from_utf8(Codec::Json.encode_counts(&snapshot).to_vec()).unwrap(),
            "the hand-written frame is what serde writes"
        );
        for codec in Codec::ALL {
            let frame = codec.decode_server(&snapshot.frame(codec)).unwrap();
            assert_eq!(
                frame,
                herald_protocol::ServerFrame::Counts(counts.clone()),
                "{codec:?}"
            );
        }
    }
}
