//! The user's side of the notification center: mark, counts, history.
//! Both transports call these; the backends only store (see
//! [`crate::read_state`] for how marks are kept).

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_protocol::{
    Category, Codec, Counts, HistoryEntry, MarkSelector, MarkState, Message, StateFilter, Stream,
    UpTo,
};
use serde::Serialize;
use uuid::Uuid;

use time::OffsetDateTime;

use crate::categories::Categories;
use crate::error::{CoreError, Result};
use crate::model::{validate_user_id, StreamKey};
use crate::read_state::{CountDelta, Flags, Level, ReadChange, ReadState};
use crate::store::Store;

/// Messages read from the store per call while scanning.
const PAGE: usize = 256;
/// A mark that keeps losing its compare-and-set gives up after this many
/// tries (someone is marking in a tight loop).
const MARK_TRIES: usize = 16;
/// Most messages one history page holds.
pub const MAX_HISTORY_PAGE: usize = 200;
/// Most ids one mark may name.
pub const MAX_MARK_IDS: usize = 1_000;

/// Which messages a mark applies to (exactly one selector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Ids(Vec<Uuid>),
    UpTo(UpTo),
    Category(Category),
    All,
}

impl Selector {
    /// Checks that the wire form names exactly one selector (and a known
    /// category).
    pub fn from_wire(wire: MarkSelector, categories: &Categories) -> Result<Selector> {
        let given = wire.ids.is_some() as u8
            + wire.up_to.is_some() as u8
            + wire.category.is_some() as u8
            + wire.all.is_some() as u8;
        if given != 1 {
            return Err(CoreError::Invalid(
                "mark: give exactly one of ids, up_to, category, all".into(),
            ));
        }
        if let Some(ids) = wire.ids {
            if ids.is_empty() || ids.len() > MAX_MARK_IDS {
                return Err(CoreError::Invalid(format!(
                    "ids: must list 1 to {MAX_MARK_IDS} ids"
                )));
            }
            return Ok(Selector::Ids(ids));
        }
        if let Some(up_to) = wire.up_to {
            return Ok(Selector::UpTo(up_to));
        }
        if let Some(category) = wire.category {
            return Ok(Selector::Category(
                categories.get(&category)?.category.clone(),
            ));
        }
        match wire.all {
            Some(true) => Ok(Selector::All),
            _ => Err(CoreError::Invalid("all: must be true".into())),
        }
    }
}

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
        out.push('}');
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
        let mut s = serializer.serialize_struct("Counts", 3)?;
        s.serialize_field("unread", &Unread(self))?;
        s.serialize_field("unread_total", &self.unread_total)?;
        s.serialize_field("unseen_total", &self.unseen_total)?;
        s.end()
    }
}

/// What a history page lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub category: Option<String>,
    pub state: Option<StateFilter>,
    pub before: Option<String>,
    pub limit: Option<usize>,
}

/// One page of history, newest first, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub messages: Vec<HistoryEntry>,
    pub next: Option<String>,
}

/// Marks, counts and history of users' messages.
pub struct Inbox {
    store: Arc<dyn Store>,
    categories: Categories,
}

impl Inbox {
    pub fn new(store: Arc<dyn Store>, categories: Categories) -> Self {
        Inbox { store, categories }
    }

    pub fn categories(&self) -> &Categories {
        &self.categories
    }

    /// Applies `mark` to the messages `selector` picks; returns how many
    /// really changed state. Ids the user cannot see are not counted.
    pub async fn mark(&self, user: &str, mark: MarkState, selector: &Selector) -> Result<u64> {
        validate_user_id(user)?;
        for _ in 0..MARK_TRIES {
            // Expire first, with the same `now` the candidates are filtered
            // by: a message expired by `now` has left the counts already, and
            // one expiring later is marked like any other (its expiry then
            // un-counts it by its new flags).
            let now = OffsetDateTime::now_utc();
            let (_, state) = self.store.user_counts(user, now).await?;
            let mut next = state.clone();
            let mut change = ReadChange {
                expect_version: state.version,
                ..ReadChange::default()
            };
            let mut changed = 0;
            for stream in Stream::ALL {
                let key = StreamKey::for_user(user, stream);
                let (candidates, prefix) = self.candidates(&key, &state, mark, selector).await?;
                // An expired message is gone: nothing to mark, nothing to
                // count. One the store has not un-counted yet (its expiry
                // index is read at ms precision, or its append landed after
                // `user_counts`) keeps its flags through a watermark raise
                // below, so that its expiry un-counts it by them.
                let mut untaken = Vec::new();
                for message in candidates {
                    if message.expired(now) {
                        let flags = next.marks(stream).flags(message.seq);
                        if !flags.expired {
                            untaken.push((message.seq, flags));
                        }
                        continue;
                    }
                    let old = next.marks(stream).flags(message.seq);
                    let new = old.apply(mark);
                    if new == old {
                        continue;
                    }
                    changed += 1;
                    if stream == Stream::Inbox {
                        change.deltas.extend(count_delta(&message, old, new));
                    }
                    next.marks_mut(stream).set(message.seq, new);
                }
                // Everything up to `prefix` now has the mark: fold it into
                // the watermark instead of keeping an exception each.
                if let Some(upto) = prefix {
                    match mark {
                        MarkState::Read => next.marks_mut(stream).raise_read(upto),
                        MarkState::Seen => next.marks_mut(stream).raise_seen(upto),
                        _ => {}
                    }
                }
                for (seq, flags) in untaken {
                    next.marks_mut(stream).set(seq, flags);
                }
                // Exceptions of messages retention dropped are forgotten
                // (their marks can never matter again).
                if state.marks(stream).exceptions.keys().next().is_some() {
                    let (first, _) = self.store.bounds(&key).await?;
                    next.marks_mut(stream).forget_below(first);
                }
            }
            change.updates = state.diff(&next);
            if change.is_empty() || self.store.commit_read_state(user, &change).await? {
                return Ok(changed);
            }
        }
        Err(CoreError::Unavailable(
            "mark: the read state kept changing; retry".into(),
        ))
    }

    /// The messages of `key` a mark may change, and for `up_to`/`all` the
    /// seq up to which every message now has the mark (read and seen only:
    /// the watermarks).
    async fn candidates(
        &self,
        key: &StreamKey,
        state: &ReadState,
        mark: MarkState,
        selector: &Selector,
    ) -> Result<(Vec<Message>, Option<u64>)> {
        let stream = key.stream();
        let marks = state.marks(stream);
        // Below its watermark a read/seen mark changes only exceptions.
        let watermark = match mark {
            MarkState::Read => Some(marks.read_upto),
            MarkState::Seen => Some(marks.seen_upto.max(marks.read_upto)),
            _ => None,
        };
        let (upto, category) = match selector {
            Selector::Ids(ids) => return Ok((self.store.find(key, ids).await?, None)),
            Selector::UpTo(u) if u.stream != stream => return Ok((Vec::new(), None)),
            Selector::UpTo(u) => (u.seq, None),
            Selector::Category(c) => (u64::MAX, Some(c)),
            Selector::All => (u64::MAX, None),
        };
        let wanted = |m: &Message| m.seq <= upto && category.is_none_or(|c| &m.category == c);
        let mut found = Vec::new();
        let start = watermark.unwrap_or(0);
        if let Some(watermark) = watermark {
            let level = if mark == MarkState::Read {
                Level::Read
            } else {
                Level::Seen
            };
            for (&seq, flags) in marks.exceptions.range(..=watermark.min(upto)) {
                if flags.level < level {
                    found.extend(
                        self.store
                            .read_after(key, seq - 1, 1)
                            .await?
                            .into_iter()
                            .filter(|m| m.seq == seq && wanted(m)),
                    );
                }
            }
        }
        let last = self.scan(key, start, upto, &mut found, wanted).await?;
        let prefix = (category.is_none() && watermark.is_some() && last > start).then_some(last);
        Ok((found, prefix))
    }

    /// Collects the messages of `key` after `after`, up to `upto`, that
    /// `wanted` keeps; returns the last seq looked at.
    async fn scan(
        &self,
        key: &StreamKey,
        after: u64,
        upto: u64,
        found: &mut Vec<Message>,
        wanted: impl Fn(&Message) -> bool,
    ) -> Result<u64> {
        let mut cursor = after;
        loop {
            let page = self.store.read_after(key, cursor, PAGE).await?;
            let Some(last) = page.last().map(|m| m.seq) else {
                return Ok(cursor);
            };
            for message in page {
                if message.seq > upto {
                    return Ok(cursor);
                }
                cursor = message.seq;
                if wanted(&message) {
                    found.push(message);
                }
            }
            cursor = cursor.max(last);
        }
    }

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
        let all = self.store.announcements(now).await?;
        let marks = state.marks(Stream::All);
        let (mut ann_unread, mut ann_unseen) = marks.count_in(all.first, all.last);
        for &seq in &all.expired {
            let flags = marks.flags(seq);
            ann_unread -= flags.counts_unread() as u64;
            ann_unseen -= flags.counts_unseen() as u64;
        }
        let mut snapshot = CountsSnapshot {
            categories: self.categories.clone(),
            unread: vec![0; self.categories.len()].into_boxed_slice(),
            unread_total: 0,
            unseen_total: 0,
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
            }
        }
        snapshot.as_of[Stream::Inbox.index()] = kept.last_seq;
        snapshot.as_of[Stream::All.index()] = all.last;
        Ok((snapshot, state))
    }

    /// A page of the user's inbox and announcements merged, newest first.
    /// The cursor holds a position per stream, so pages never skip or
    /// repeat a message whatever arrives meanwhile.
    pub async fn history(&self, user: &str, query: HistoryQuery) -> Result<HistoryPage> {
        validate_user_id(user)?;
        let limit = query.limit.unwrap_or(50);
        if limit == 0 || limit > MAX_HISTORY_PAGE {
            return Err(CoreError::Invalid(format!(
                "limit: must be 1 to {MAX_HISTORY_PAGE}"
            )));
        }
        let category = match query.category.as_deref() {
            Some(name) => Some(self.categories.get(name)?.category.clone()),
            None => None,
        };
        let before = match &query.before {
            Some(cursor) => decode_cursor(cursor)?,
            None => [None; Stream::ALL.len()],
        };
        let state = self.store.read_state(user).await?;
        let now = OffsetDateTime::now_utc();
        let keep = |m: &Message| -> Option<HistoryEntry> {
            let flags = state.marks(m.stream).flags(m.seq);
            let public = flags.public()?;
            if m.expired(now)
                || category.as_ref().is_some_and(|c| c != &m.category)
                || !state_matches(query.state, flags)
            {
                return None;
            }
            Some(HistoryEntry {
                message: m.clone(),
                state: public,
            })
        };
        // Up to `limit` matches from each stream, newest first.
        let mut lists = Vec::new();
        for stream in Stream::ALL {
            let key = StreamKey::for_user(user, stream);
            lists.push(
                self.newest(&key, before[stream.index()], limit, &keep)
                    .await?,
            );
        }
        // Merge by taking the newer head each time, so each stream gives a
        // prefix of its list and its cursor is simply its lowest seq taken.
        let mut heads = [0usize; Stream::ALL.len()];
        let mut merged = Vec::with_capacity(limit);
        while merged.len() < limit {
            let newer = Stream::ALL
                .into_iter()
                .filter_map(|s| lists[s.index()].0.get(heads[s.index()]).map(|e| (s, e)))
                .max_by_key(|(s, e)| (e.message.ts, *s == Stream::Inbox));
            let Some((stream, entry)) = newer else { break };
            merged.push(entry.clone());
            heads[stream.index()] += 1;
        }
        let mut next = before;
        let mut more = false;
        for stream in Stream::ALL {
            let (entries, exhausted) = &lists[stream.index()];
            let taken = heads[stream.index()];
            if taken > 0 {
                next[stream.index()] = Some(entries[taken - 1].message.seq);
            }
            more |= taken < entries.len() || !exhausted;
        }
        Ok(HistoryPage {
            messages: merged,
            next: more.then(|| encode_cursor(next)),
        })
    }

    /// Up to `limit` entries of `key` below `before` that `keep` keeps,
    /// newest first, and whether the stream has nothing older.
    async fn newest(
        &self,
        key: &StreamKey,
        before: Option<u64>,
        limit: usize,
        keep: &impl Fn(&Message) -> Option<HistoryEntry>,
    ) -> Result<(Vec<HistoryEntry>, bool)> {
        let mut found = Vec::new();
        let mut before = before;
        loop {
            let page = self.store.read_before(key, before, PAGE).await?;
            let exhausted = page.len() < PAGE;
            for message in &page {
                before = Some(message.seq);
                if let Some(entry) = keep(message) {
                    found.push(entry);
                    if found.len() == limit {
                        // Older matches may follow; the next page will tell.
                        return Ok((found, false));
                    }
                }
            }
            if exhausted {
                return Ok((found, true));
            }
        }
    }
}

/// What a state change of one inbox message does to the kept counts.
fn count_delta(message: &Message, old: Flags, new: Flags) -> Option<CountDelta> {
    let unread = new.counts_unread() as i64 - old.counts_unread() as i64;
    let unseen = new.counts_unseen() as i64 - old.counts_unseen() as i64;
    (unread != 0 || unseen != 0).then(|| CountDelta {
        seq: message.seq,
        category: message.category.to_string(),
        unread,
        unseen,
    })
}

fn state_matches(filter: Option<StateFilter>, flags: Flags) -> bool {
    match filter {
        None => !flags.archived,
        Some(StateFilter::Archived) => flags.archived,
        Some(StateFilter::Unread) => !flags.archived && flags.level < Level::Read,
        Some(StateFilter::Read) => !flags.archived && flags.level == Level::Read,
    }
}

/// `<inbox bound>.<all bound>`: each the seq below which that stream's next
/// page starts (`-` for "from the newest").
fn encode_cursor(bounds: [Option<u64>; Stream::ALL.len()]) -> String {
    bounds
        .iter()
        .map(|b| b.map_or("-".to_owned(), |s| s.to_string()))
        .collect::<Vec<_>>()
        .join(".")
}

fn decode_cursor(cursor: &str) -> Result<[Option<u64>; Stream::ALL.len()]> {
    let bad = || CoreError::Invalid("before: not a cursor this server gave".into());
    let parts: Vec<&str> = cursor.split('.').collect();
    if parts.len() != Stream::ALL.len() {
        return Err(bad());
    }
    let mut bounds = [None; Stream::ALL.len()];
    for (bound, part) in bounds.iter_mut().zip(parts) {
        *bound = match part {
            "-" => None,
            n => Some(n.parse().map_err(|_| bad())?),
        };
    }
    Ok(bounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        for bounds in [[None, None], [Some(5), None], [Some(1), Some(9)]] {
            assert_eq!(decode_cursor(&encode_cursor(bounds)).unwrap(), bounds);
        }
        for bad in ["", "1", "1.2.3", "x.1", "-1.2"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_snapshot_counts_new_messages_and_encodes_the_counts_frame() {
        let categories = Categories::default();
        let mut snapshot = CountsSnapshot {
            unread: vec![0; categories.len()].into_boxed_slice(),
            categories,
            unread_total: 0,
            unseen_total: 0,
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

    #[test]
    fn a_selector_is_exactly_one() {
        let c = Categories::default();
        let none = MarkSelector::default();
        assert!(Selector::from_wire(none, &c).is_err());
        let two = MarkSelector {
            all: Some(true),
            category: Some("remind".into()),
            ..Default::default()
        };
        assert!(Selector::from_wire(two, &c).is_err());
        let bad = MarkSelector {
            category: Some("nope".into()),
            ..Default::default()
        };
        assert!(Selector::from_wire(bad, &c).is_err());
        let all = MarkSelector {
            all: Some(true),
            ..Default::default()
        };
        assert_eq!(Selector::from_wire(all, &c).unwrap(), Selector::All);
    }
}
