//! A store as one node sees it, with the crash points of a read-state
//! commit forced: the node dies just before its next commit (nothing
//! applied, the caller gets an error), or just after (applied, and the
//! caller still gets an error: the reply never reached a live node), or
//! another node's work runs just before it. Every other call goes straight
//! to the backend's store, so the suite's crash cases run on every backend.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use herald_protocol::{Message, Receipt, Stream};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    AnnouncementRange, ConversationStore, CoreError, Draft, KeptCounts, ReadChange, ReadState,
    Result, Store, StoredPreferences, StreamKey,
};

/// Where the next commit stops.
enum Fault {
    /// Before it is applied.
    DiesBefore,
    /// Once it is applied.
    DiesAfter,
    /// This runs first (another node's work), then the commit goes on.
    Meanwhile(BoxFuture<'static, ()>),
}

/// [`Store`] over `inner`, with a fault armed for its next
/// `commit_read_state` (one at a time; later commits go through).
pub struct DyingStore {
    inner: Arc<dyn Store>,
    fault: Mutex<Option<Fault>>,
}

impl DyingStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(DyingStore {
            inner,
            fault: Mutex::new(None),
        })
    }

    /// The node dies just before its next commit.
    pub fn die_before_commit(&self) {
        *self.fault.lock().unwrap() = Some(Fault::DiesBefore);
    }

    /// The node dies just after its next commit.
    pub fn die_after_commit(&self) {
        *self.fault.lock().unwrap() = Some(Fault::DiesAfter);
    }

    /// `work` runs to its end just before the next commit.
    pub fn before_commit(&self, work: BoxFuture<'static, ()>) {
        *self.fault.lock().unwrap() = Some(Fault::Meanwhile(work));
    }

    fn died() -> CoreError {
        CoreError::Unavailable("the node died at its commit (a forced crash point)".into())
    }
}

#[async_trait]
impl Store for DyingStore {
    async fn append(&self, stream: &StreamKey, draft: Draft) -> Result<Message> {
        self.inner.append(stream, draft).await
    }

    async fn read_after(
        &self,
        stream: &StreamKey,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.inner.read_after(stream, after, limit).await
    }

    async fn last_seq(&self, stream: &StreamKey) -> Result<u64> {
        self.inner.last_seq(stream).await
    }

    async fn ack(&self, user: &str, device: &str, stream: Stream, seq: u64) -> Result<u64> {
        self.inner.ack(user, device, stream, seq).await
    }

    async fn acked(&self, user: &str, device: &str, stream: Stream) -> Result<u64> {
        self.inner.acked(user, device, stream).await
    }

    async fn read_before(
        &self,
        stream: &StreamKey,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.inner.read_before(stream, before, limit).await
    }

    async fn find(&self, stream: &StreamKey, ids: &[Uuid]) -> Result<Vec<Message>> {
        self.inner.find(stream, ids).await
    }

    async fn bounds(&self, stream: &StreamKey) -> Result<(u64, u64)> {
        self.inner.bounds(stream).await
    }

    async fn read_state(&self, user: &str) -> Result<ReadState> {
        self.inner.read_state(user).await
    }

    async fn commit_read_state(&self, user: &str, change: &ReadChange) -> Result<bool> {
        let fault = self.fault.lock().unwrap().take();
        match fault {
            None => self.inner.commit_read_state(user, change).await,
            Some(Fault::DiesBefore) => Err(Self::died()),
            Some(Fault::DiesAfter) => {
                self.inner.commit_read_state(user, change).await?;
                Err(Self::died())
            }
            Some(Fault::Meanwhile(work)) => {
                work.await;
                self.inner.commit_read_state(user, change).await
            }
        }
    }

    async fn user_counts(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<(KeptCounts, ReadState)> {
        self.inner.user_counts(user, now).await
    }

    async fn user_counts_and_preferences(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<(KeptCounts, ReadState, Option<StoredPreferences>)> {
        self.inner.user_counts_and_preferences(user, now).await
    }

    async fn announcements(&self, now: OffsetDateTime) -> Result<AnnouncementRange> {
        self.inner.announcements(now).await
    }

    async fn erase_user(&self, user: &str) -> Result<crate::ErasedStore> {
        self.inner.erase_user(user).await
    }
}

#[async_trait]
impl ConversationStore for DyingStore {
    async fn private_from(
        &self,
        user: &str,
        peer: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.inner.private_from(user, peer, before, limit).await
    }

    async fn private_seqs(&self, user: &str, peer: &str, limit: usize) -> Result<Vec<u64>> {
        self.inner.private_seqs(user, peer, limit).await
    }

    async fn peers(&self, user: &str) -> Result<Vec<(String, i64)>> {
        self.inner.peers(user).await
    }

    async fn touch_peer(&self, user: &str, peer: &str, at_us: i64) -> Result<()> {
        self.inner.touch_peer(user, peer, at_us).await
    }

    async fn delivered(&self, user: &str) -> Result<u64> {
        self.inner.delivered(user).await
    }

    async fn acknowledge_inbox(&self, user: &str, device: &str, seq: u64) -> Result<Vec<Message>> {
        self.inner.acknowledge_inbox(user, device, seq).await
    }

    async fn push_receipt(&self, user: &str, receipt: &Receipt) -> Result<()> {
        self.inner.push_receipt(user, receipt).await
    }
}
