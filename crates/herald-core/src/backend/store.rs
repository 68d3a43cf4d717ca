//! The store: the source of truth for every message.

use async_trait::async_trait;
use herald_protocol::{Message, Severity, Stream};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{ConversationStore, StoredPreferences};
use crate::error::Result;
use crate::model::{Draft, StreamKey};
use crate::read_state::{KeptCounts, ReadChange, ReadState};

/// Ordered, gap-free streams of messages, and each device's delivery cursor.
///
/// Appending gives the message the stream's next seq (1, 2, 3, … with no gap)
/// and, in the same atomic step, publishes it to the stream's broker channel,
/// so subscribers see a stream's messages in seq order and nothing is
/// published that was not stored.
///
/// The conversation side of the store ([`ConversationStore`]) sits in its
/// own trait, implemented next to each backend's store.
#[async_trait]
pub trait Store: ConversationStore + Send + Sync + 'static {
    /// Appends `draft` to `stream` and publishes it. Returns the stored message.
    ///
    /// A private message (category `mailbox` with a `from`) to an inbox
    /// whose user blocked that sender is refused with
    /// [`CoreError::Blocked`](crate::CoreError::Blocked) and not stored: the
    /// check is part of the append (on Redis, inside its script), so it
    /// costs no round trip of its own.
    ///
    /// Appending an id the stream retains already stores nothing and
    /// publishes nothing: the message returned carries the seq stored
    /// under that id.
    /// (Fan-out jobs give each receiver's message an id derived from the
    /// job and the receiver, so a job resumed after its node died appends
    /// each message once.)
    ///
    /// An append takes its place in the stream when its future is first
    /// polled: appends to one stream first polled in some order get seqs in
    /// that order, however many are in flight (a connection pipelining its
    /// `send`s relies on it).
    async fn append(&self, stream: &StreamKey, draft: Draft) -> Result<Message>;

    /// Up to `limit` messages with seq greater than `after`, oldest first.
    /// Messages dropped by retention are skipped, so the first seq returned
    /// may be greater than `after + 1`.
    async fn read_after(
        &self,
        stream: &StreamKey,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Message>>;

    /// The seq of the newest message ever appended to `stream` (0 if none).
    async fn last_seq(&self, stream: &StreamKey) -> Result<u64>;

    /// Records that `device` of `user` has everything of `stream` up to `seq`.
    /// Cursors only move forward and never past the stream's last seq (an ack
    /// from the future would make the device skip messages); returns the
    /// cursor after the update.
    async fn ack(&self, user: &str, device: &str, stream: Stream, seq: u64) -> Result<u64>;

    /// The cursor [`Store::ack`] last moved (0 if never).
    async fn acked(&self, user: &str, device: &str, stream: Stream) -> Result<u64>;

    /// Up to `limit` messages with seq below `before` (`None`: from the
    /// newest), newest first.
    async fn read_before(
        &self,
        stream: &StreamKey,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>>;

    /// The retained messages of `stream` with these ids (any order; ids
    /// not in the stream are left out).
    async fn find(&self, stream: &StreamKey, ids: &[Uuid]) -> Result<Vec<Message>>;

    /// The first retained seq and the last seq of `stream`; `first` is
    /// `last + 1` when nothing is retained.
    async fn bounds(&self, stream: &StreamKey) -> Result<(u64, u64)>;

    /// The user's read state (the default one if the user never marked
    /// anything).
    async fn read_state(&self, user: &str) -> Result<ReadState>;

    /// Applies `change` if the stored version is still
    /// `change.expect_version`, bumping it, and in the same atomic step
    /// tells every node holding the user that the counts changed
    /// ([`BrokerSink::counts_changed`](super::BrokerSink::counts_changed)). Returns false, having done
    /// nothing, when someone else changed the state first. A bare change
    /// ([`ReadChange::is_bare`]) only bumps the version and tells no one
    /// (a snooze waker that found nothing due orders itself with the
    /// snoozes committed meanwhile this way).
    async fn commit_read_state(&self, user: &str, change: &ReadChange) -> Result<bool>;

    /// In one atomic step: un-counts, once each, the user's inbox messages
    /// whose `expires_at` passed by `now` (bumping the read-state version if
    /// any was), then reads the kept counts of the inbox — kept up to date
    /// by every append, mark, expiry and retention trim — with the inbox's
    /// last seq, and the user's read state.
    async fn user_counts(&self, user: &str, now: OffsetDateTime)
        -> Result<(KeptCounts, ReadState)>;

    /// [`Store::user_counts`] and, read in the same step, what the user set
    /// of their preferences, for a connection's start (it keeps their quiet
    /// hours): a backend that keeps them beside the counts saves a command
    /// per connection that way (Redis: the counts script reads the
    /// preferences hash too). `None` from a backend that does not (the
    /// default): the caller loads them from the
    /// [`PreferenceStore`](super::PreferenceStore).
    async fn user_counts_and_preferences(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<(KeptCounts, ReadState, Option<StoredPreferences>)> {
        let (kept, state) = self.user_counts(user, now).await?;
        Ok((kept, state, None))
    }

    /// The `all` stream's retained range, the seqs in it that expired by
    /// `now` and those of a severity other than normal.
    async fn announcements(&self, now: OffsetDateTime) -> Result<AnnouncementRange>;

    /// Erases what the store holds of `user` (an erasure request,
    /// `DELETE /v1/users/{id}`), in one atomic step: the inbox's messages
    /// and their indexes, the kept counts, the read state (only its version
    /// stays, one higher, so a mark computed before fails its
    /// compare-and-set), the collapse groups, the device cursors, the
    /// delivered watermark and the user's side of their conversations (the
    /// conversation list and the private-message indexes; each peer keeps
    /// theirs). In the same step it tells every node holding the user
    /// ([`BrokerSink::erased`](super::BrokerSink::erased)), which closes
    /// their connections.
    ///
    /// The inbox's seq counter stays: it holds nothing of the user, and a
    /// device that comes back must never be handed a seq it holds already.
    /// A message appended concurrently is either before the step (erased)
    /// or after it (kept whole, with its counts). Idempotent: a second call
    /// erases nothing and says so.
    async fn erase_user(&self, user: &str) -> Result<ErasedStore>;
}

/// What [`Store::erase_user`] erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErasedStore {
    /// Inbox messages retained.
    pub messages: u64,
    /// Conversations in the user's list.
    pub conversations: u64,
    /// Device cursors.
    pub cursors: u64,
}

/// What counts need to know of the `all` stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnouncementRange {
    /// The first retained seq (`last + 1` when none is).
    pub first: u64,
    pub last: u64,
    /// Retained seqs whose `expires_at` passed, ascending.
    pub expired: Vec<u64>,
    /// The soonest expiry still to come (the counts change then).
    pub next_expiry: Option<OffsetDateTime>,
    /// The retained announcements of a severity other than normal, by seq
    /// ascending (expired ones included: `expired` says which). Each
    /// user's `unread_by_severity` derives from these and the user's marks,
    /// as the announcements' unread count derives from the range: the rest
    /// is normal, so a normal announcement, the common one, is kept
    /// nowhere (memory: `Log::severe`; Redis: the `{all}:sev` sorted set).
    /// A store may list seqs outside `first..=last` (trimmed since): the
    /// reader skips them.
    pub severe: Vec<(u64, Severity)>,
}
