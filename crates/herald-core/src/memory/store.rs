use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use herald_protocol::{Category, Message, Severity, Stream};
use time::OffsetDateTime;
use uuid::Uuid;

use super::blocklist::MemoryBlocklist;
use super::broker::MemoryBus;
use super::preferences::MemoryPreferences;
use crate::backend::{AnnouncementRange, ErasedStore, Store};
use crate::collapse;
use crate::error::{CoreError, Result};
use crate::model::{Draft, Retention, StreamKey};
use crate::preferences::keeps_out;
use crate::read_state::{KeptCounts, MarksUpdate, ReadChange, ReadState};

#[derive(Default)]
pub(super) struct Log {
    pub(super) last_seq: u64,
    entries: VecDeque<Message>,
    /// Message id → seq, for the entries retained.
    ids: HashMap<Uuid, u64>,
    /// (expiry in unix ns, seq) of the messages with an `expires_at`.
    expiring: BTreeSet<(i128, u64)>,
    /// The retained messages of a severity other than normal (the `all`
    /// stream's: counts derive each user's announcements by severity from
    /// it, see [`AnnouncementRange::severe`]).
    severe: BTreeMap<u64, Severity>,
}

impl Log {
    /// Drops what retention no longer keeps; returns it.
    fn trim(&mut self, retention: &Retention, now: OffsetDateTime) -> Vec<Message> {
        let mut dropped = Vec::new();
        while self.entries.len() > retention.max_entries
            || self
                .entries
                .front()
                .is_some_and(|m| now - m.ts > retention.max_age)
        {
            let Some(m) = self.entries.pop_front() else {
                break;
            };
            self.ids.remove(&m.id);
            self.severe.remove(&m.seq);
            dropped.push(m);
        }
        dropped
    }

    pub(super) fn first_seq(&self) -> u64 {
        self.entries.front().map_or(self.last_seq + 1, |m| m.seq)
    }

    /// Takes the seqs of retained messages whose expiry passed by `now` out
    /// of the index.
    fn take_expired(&mut self, now: OffsetDateTime) -> Vec<u64> {
        let now = now.unix_timestamp_nanos();
        let first = self.first_seq();
        let due: Vec<(i128, u64)> = self.expiring.range(..=(now, u64::MAX)).copied().collect();
        for entry in &due {
            self.expiring.remove(entry);
        }
        due.into_iter()
            .map(|(_, seq)| seq)
            .filter(|&s| s >= first)
            .collect()
    }

    /// Seqs of retained messages whose expiry passed by `now`, ascending.
    fn expired(&self, now: OffsetDateTime) -> Vec<u64> {
        let now = now.unix_timestamp_nanos();
        let first = self.first_seq();
        let mut seqs: Vec<u64> = self
            .expiring
            .range(..=(now, u64::MAX))
            .map(|&(_, seq)| seq)
            .filter(|&s| s >= first)
            .collect();
        seqs.sort_unstable();
        seqs
    }

    /// The soonest expiry in the index after `now`.
    fn next_expiry(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let now = now.unix_timestamp_nanos();
        self.expiring
            .range((now + 1, 0)..)
            .next()
            .and_then(|&(t, _)| OffsetDateTime::from_unix_timestamp_nanos(t).ok())
    }

    /// Seqs in a log are consecutive, so a position is arithmetic.
    pub(super) fn get(&self, seq: u64) -> Option<&Message> {
        let index = seq.checked_sub(self.first_seq())?;
        self.entries.get(usize::try_from(index).ok()?)
    }
}

/// One user's read state and the inbox counts kept from it.
#[derive(Default)]
struct UserMarks {
    state: ReadState,
    unread: BTreeMap<String, i64>,
    unseen: BTreeMap<String, i64>,
    /// Unread per category of the severities other than normal (see
    /// [`KeptCounts::severe`]).
    severe: BTreeMap<String, [i64; 4]>,
}

impl UserMarks {
    /// Counts a new (unseen) inbox message, or one leaving (retention,
    /// expiry), by what its flags say.
    fn count(&mut self, message: &Message, sign: i64) {
        let flags = self.state.marks(Stream::Inbox).flags(message.seq);
        let category = message.category.as_str();
        if flags.counts_unread() {
            *self.unread.entry(category.to_owned()).or_default() += sign;
            self.count_severity(category, message.severity, sign);
        }
        if flags.counts_unseen() {
            *self.unseen.entry(category.to_owned()).or_default() += sign;
        }
    }

    /// Adds `unread` to the kept count of `category` and `severity`, which
    /// only severities other than normal have.
    fn count_severity(&mut self, category: &str, severity: Severity, unread: i64) {
        if !severity.is_normal() && unread != 0 {
            self.severe.entry(category.to_owned()).or_default()[severity.index()] += unread;
        }
    }
}

#[derive(Default)]
pub(super) struct State {
    pub(super) logs: HashMap<StreamKey, Log>,
    cursors: HashMap<(String, String, Stream), u64>,
    marks: HashMap<String, UserMarks>,
    /// (receiver, sender) -> inbox seqs of the sender's private messages.
    pub(super) private: HashMap<(String, String), BTreeSet<u64>>,
    /// user -> peer -> last activity in their conversation (unix ms).
    pub(super) peers: HashMap<String, HashMap<String, i64>>,
    /// user -> the highest inbox seq a device of theirs acknowledged.
    pub(super) delivered: HashMap<String, u64>,
    /// (user, group key) -> the inbox seq of the group's newest message and
    /// how many it stands for (`crate::collapse`).
    groups: HashMap<(String, String), (u64, u32)>,
}

impl State {
    /// Moves a device's cursor forward, never past the stream's last seq.
    pub(super) fn ack(&mut self, user: &str, device: &str, stream: Stream, seq: u64) -> u64 {
        let last = self
            .logs
            .get(&StreamKey::for_user(user, stream))
            .map_or(0, |l| l.last_seq);
        let cursor = self
            .cursors
            .entry((user.to_owned(), device.to_owned(), stream))
            .or_default();
        *cursor = (*cursor).max(seq.min(last));
        *cursor
    }

    /// Trims `stream`, keeping the inbox counts equal to a recount.
    fn trim(&mut self, stream: &StreamKey, retention: &Retention) {
        let Some(log) = self.logs.get_mut(stream) else {
            return;
        };
        let dropped = log.trim(retention, OffsetDateTime::now_utc());
        if let (Some(user), false) = (stream.user(), dropped.is_empty()) {
            let marks = self.marks.entry(user.to_owned()).or_default();
            for message in &dropped {
                marks.count(message, -1);
            }
        }
    }

    /// Applies `crate::collapse` to `message`, about to be appended to
    /// `user`'s inbox: if the open item of its group is still unread, it
    /// is un-counted and marked replaced (bumping the read-state version,
    /// so a mark computed before recomputes) and `message` says what it
    /// replaced and how many it stands for. Either way `message` becomes
    /// the group's open item.
    fn collapse(&mut self, user: &str, message: &mut Message) {
        let Some(key) = message.group_key.clone() else {
            return;
        };
        let open = self
            .groups
            .insert((user.to_owned(), key.clone()), (message.seq, 1));
        let Some((seq, n)) = open else {
            return;
        };
        let Some(old) = self
            .logs
            .get(&StreamKey::inbox(user))
            .and_then(|log| log.get(seq))
            .cloned()
        else {
            return;
        };
        let marks = self.marks.entry(user.to_owned()).or_default();
        let flags = marks.state.marks(Stream::Inbox).flags(seq);
        if !collapse::replaceable(flags, old.expired(OffsetDateTime::now_utc())) {
            return;
        }
        marks.count(&old, -1);
        marks
            .state
            .marks_mut(Stream::Inbox)
            .set(seq, collapse::replaced(flags));
        marks.state.version += 1;
        let n = collapse::collapsed(n);
        message.collapsed = Some(n);
        message.replaces = Some(old.id);
        self.groups.insert((user.to_owned(), key), (message.seq, n));
    }

    /// Erases what the state holds of `user` (see [`Store::erase_user`]).
    fn erase(&mut self, user: &str) -> ErasedStore {
        let mut erased = ErasedStore::default();
        if let Some(log) = self.logs.get_mut(&StreamKey::inbox(user)) {
            erased.messages = log.entries.len() as u64;
            log.entries.clear();
            log.ids.clear();
            log.expiring.clear();
        }
        let before = self.cursors.len();
        self.cursors.retain(|(u, _, _), _| u != user);
        erased.cursors = (before - self.cursors.len()) as u64;
        if let Some(marks) = self.marks.get_mut(user) {
            let version = marks.state.version + 1;
            *marks = UserMarks::default();
            marks.state.version = version;
        }
        self.private.retain(|(receiver, _), _| receiver != user);
        erased.conversations = self.peers.remove(user).map_or(0, |p| p.len() as u64);
        self.delivered.remove(user);
        self.groups.retain(|(u, _), _| u != user);
        erased
    }

    /// Un-counts the user's inbox messages that expired by `now`, once.
    fn expire(&mut self, user: &str, now: OffsetDateTime) {
        let Some(log) = self.logs.get_mut(&StreamKey::inbox(user)) else {
            return;
        };
        let due: Vec<Message> = log
            .take_expired(now)
            .into_iter()
            .filter_map(|seq| log.get(seq).cloned())
            .collect();
        if due.is_empty() {
            return;
        }
        let marks = self.marks.entry(user.to_owned()).or_default();
        for message in &due {
            marks.count(message, -1);
            // Remembered, so that retention dropping it later does not
            // un-count it a second time.
            let inbox = marks.state.marks_mut(Stream::Inbox);
            let flags = inbox.flags(message.seq);
            inbox.set(
                message.seq,
                crate::read_state::Flags {
                    expired: true,
                    ..flags
                },
            );
        }
        marks.state.version += 1;
    }
}

/// Streams, cursors and read state in maps behind one lock; appends and
/// marks publish on the bus.
pub struct MemoryStore {
    pub(super) bus: Arc<MemoryBus>,
    retention: Retention,
    pub(super) state: Mutex<State>,
    /// Consulted by each private message's append.
    blocklist: Arc<MemoryBlocklist>,
    /// Consulted by each inbox append (`in_app: false` keeps a message
    /// out); none: every message is kept.
    preferences: Option<Arc<MemoryPreferences>>,
}

impl MemoryStore {
    pub fn new(bus: Arc<MemoryBus>, retention: Retention) -> Self {
        Self::with_blocklist(bus, retention, Arc::default())
    }

    /// A store whose appends refuse private messages that `blocklist`
    /// blocks (share it with the node's [`crate::Blocklist`]).
    pub fn with_blocklist(
        bus: Arc<MemoryBus>,
        retention: Retention,
        blocklist: Arc<MemoryBlocklist>,
    ) -> Self {
        MemoryStore {
            bus,
            retention,
            state: Mutex::default(),
            blocklist,
            preferences: None,
        }
    }

    /// This store, its inbox appends keeping out what the receivers'
    /// `preferences` mute (share them with the node's
    /// [`crate::PreferenceStore`]).
    pub fn with_preferences(mut self, preferences: Arc<MemoryPreferences>) -> Self {
        self.preferences = Some(preferences);
        self
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn append(&self, stream: &StreamKey, draft: Draft) -> Result<Message> {
        if let (Some(user), Some(from)) = (stream.user(), &draft.from) {
            if draft.category == Category::MAILBOX && self.blocklist.blocks(user, from) {
                return Err(CoreError::Blocked(
                    "the receiver does not accept your messages".into(),
                ));
            }
        }
        if let (Some(user), Some(preferences)) = (stream.user(), &self.preferences) {
            if keeps_out(preferences.stored(user).as_ref(), &draft) {
                return Err(CoreError::Skipped(
                    "the receiver's preferences keep this message out".into(),
                ));
            }
        }
        let mut state = self.state.lock().unwrap();
        let log = state.logs.entry(stream.clone()).or_default();
        if let Some(stored) = log.ids.get(&draft.id).and_then(|&seq| log.get(seq)) {
            return Ok(stored.clone());
        }
        log.last_seq += 1;
        let mut message = draft.into_message(stream.stream(), log.last_seq);
        if let Some(user) = stream.user() {
            state.collapse(user, &mut message);
        }
        let log = state.logs.entry(stream.clone()).or_default();
        log.entries.push_back(message.clone());
        log.ids.insert(message.id, message.seq);
        if let Some(t) = message.expires_at {
            log.expiring.insert((t.unix_timestamp_nanos(), message.seq));
        }
        if stream.user().is_none() && !message.severity.is_normal() {
            log.severe.insert(message.seq, message.severity);
        }
        if let Some(user) = stream.user() {
            state
                .marks
                .entry(user.to_owned())
                .or_default()
                .count(&message, 1);
            state.index_private(user, &message);
        }
        state.trim(stream, &self.retention);
        // Publishing under the lock keeps each stream's publishes in seq order.
        self.bus.publish(stream, message.clone());
        Ok(message)
    }

    async fn read_after(
        &self,
        stream: &StreamKey,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut state = self.state.lock().unwrap();
        state.trim(stream, &self.retention);
        let Some(log) = state.logs.get(stream) else {
            return Ok(Vec::new());
        };
        let skip = (after + 1).saturating_sub(log.first_seq()) as usize;
        Ok(log.entries.iter().skip(skip).take(limit).cloned().collect())
    }

    async fn last_seq(&self, stream: &StreamKey) -> Result<u64> {
        let state = self.state.lock().unwrap();
        Ok(state.logs.get(stream).map_or(0, |l| l.last_seq))
    }

    async fn ack(&self, user: &str, device: &str, stream: Stream, seq: u64) -> Result<u64> {
        Ok(self.state.lock().unwrap().ack(user, device, stream, seq))
    }

    async fn acked(&self, user: &str, device: &str, stream: Stream) -> Result<u64> {
        let state = self.state.lock().unwrap();
        Ok(state
            .cursors
            .get(&(user.to_owned(), device.to_owned(), stream))
            .copied()
            .unwrap_or(0))
    }

    async fn read_before(
        &self,
        stream: &StreamKey,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut state = self.state.lock().unwrap();
        state.trim(stream, &self.retention);
        let Some(log) = state.logs.get(stream) else {
            return Ok(Vec::new());
        };
        let before = before.unwrap_or(u64::MAX);
        Ok(log
            .entries
            .iter()
            .rev()
            .skip_while(|m| m.seq >= before)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn find(&self, stream: &StreamKey, ids: &[Uuid]) -> Result<Vec<Message>> {
        let mut state = self.state.lock().unwrap();
        state.trim(stream, &self.retention);
        let Some(log) = state.logs.get(stream) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| log.ids.get(id))
            .filter_map(|seq| log.get(*seq).cloned())
            .collect())
    }

    async fn bounds(&self, stream: &StreamKey) -> Result<(u64, u64)> {
        let mut state = self.state.lock().unwrap();
        state.trim(stream, &self.retention);
        Ok(state
            .logs
            .get(stream)
            .map_or((1, 0), |l| (l.first_seq(), l.last_seq)))
    }

    async fn read_state(&self, user: &str) -> Result<ReadState> {
        let state = self.state.lock().unwrap();
        Ok(state
            .marks
            .get(user)
            .map(|m| m.state.clone())
            .unwrap_or_default())
    }

    async fn commit_read_state(&self, user: &str, change: &ReadChange) -> Result<bool> {
        let mut state = self.state.lock().unwrap();
        // Dropped inbox messages are skipped: their trim un-counted them.
        let inbox = StreamKey::inbox(user);
        state.trim(&inbox, &self.retention);
        let first = state.logs.get(&inbox).map_or(1, |l| l.first_seq());
        let marks = state.marks.entry(user.to_owned()).or_default();
        if marks.state.version != change.expect_version {
            return Ok(false);
        }
        marks.state.version += 1;
        for update in &change.updates {
            // Removing an exception is always safe; setting one for a
            // dropped message would only leave garbage.
            let dropped = matches!(*update, MarksUpdate::Set(Stream::Inbox, seq, _) | MarksUpdate::Acted(Stream::Inbox, seq, Some(_)) if seq < first);
            if !dropped {
                apply(&mut marks.state, update.clone());
            }
        }
        for delta in change.deltas.iter().filter(|d| d.seq >= first) {
            *marks.unread.entry(delta.category.clone()).or_default() += delta.unread;
            *marks.unseen.entry(delta.category.clone()).or_default() += delta.unseen;
            marks.count_severity(&delta.category, delta.severity, delta.unread);
        }
        if !change.is_bare() {
            self.bus
                .publish_counts_changed(user, change.changed.as_ref());
        }
        Ok(true)
    }

    async fn user_counts(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<(KeptCounts, ReadState)> {
        let mut state = self.state.lock().unwrap();
        let inbox = StreamKey::inbox(user);
        state.trim(&inbox, &self.retention);
        state.expire(user, now);
        let log = state.logs.get(&inbox);
        let last_seq = log.map_or(0, |l| l.last_seq);
        let next_expiry = log.and_then(|l| l.next_expiry(now));
        let Some(marks) = state.marks.get(user) else {
            let kept = KeptCounts {
                last_seq,
                next_expiry,
                ..KeptCounts::default()
            };
            return Ok((kept, ReadState::default()));
        };
        let kept = KeptCounts {
            unread: marks.unread.clone(),
            unseen: marks.unseen.clone(),
            severe: marks.severe.clone(),
            last_seq,
            next_expiry,
        };
        Ok((kept, marks.state.clone()))
    }

    async fn erase_user(&self, user: &str) -> Result<ErasedStore> {
        let mut state = self.state.lock().unwrap();
        let erased = state.erase(user);
        // Under the lock, as an append publishes: nothing appended after
        // the erasure reaches a connection before it is closed.
        self.bus.publish_erased(user);
        Ok(erased)
    }

    async fn announcements(&self, now: OffsetDateTime) -> Result<AnnouncementRange> {
        let mut state = self.state.lock().unwrap();
        state.trim(&StreamKey::All, &self.retention);
        Ok(state.logs.get(&StreamKey::All).map_or(
            AnnouncementRange {
                first: 1,
                ..Default::default()
            },
            |log| AnnouncementRange {
                first: log.first_seq(),
                last: log.last_seq,
                expired: log.expired(now),
                next_expiry: log.next_expiry(now),
                severe: log.severe.iter().map(|(&s, &v)| (s, v)).collect(),
            },
        ))
    }
}

/// Writes one update as a backend that stores fields would.
fn apply(state: &mut ReadState, update: MarksUpdate) {
    match update {
        MarksUpdate::SeenUpto(stream, seq) => state.marks_mut(stream).seen_upto = seq,
        MarksUpdate::ReadUpto(stream, seq) => state.marks_mut(stream).read_upto = seq,
        MarksUpdate::Set(stream, seq, flags) => {
            state.marks_mut(stream).exceptions.insert(seq, flags);
        }
        MarksUpdate::Unset(stream, seq) => {
            state.marks_mut(stream).exceptions.remove(&seq);
        }
        MarksUpdate::Until(stream, seq, Some(until)) => {
            state.marks_mut(stream).snoozed.insert(seq, until);
        }
        MarksUpdate::Until(stream, seq, None) => {
            state.marks_mut(stream).snoozed.remove(&seq);
        }
        MarksUpdate::Acted(stream, seq, Some(action)) => {
            state.marks_mut(stream).acted.insert(seq, action);
        }
        MarksUpdate::Acted(stream, seq, None) => {
            state.marks_mut(stream).acted.remove(&seq);
        }
    }
}
