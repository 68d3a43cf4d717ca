//! A store that went back: a Redis failover with asynchronous replication
//! loses the newest appends, and the new primary's seq counter hands their
//! seqs to the next messages (docs/faults.md, bug 1). Left alone, every
//! connection that had written those seqs would drop the new messages as
//! duplicates, and so would a client deduplicating by seq.
//!
//! It is noticed where a position meets the store: the broker's resync
//! after its reconnect, a live delivery of a written seq with another id, a
//! `sync` (or a resume) from past the store's end or from a message the
//! store does not hold at that seq. Then the client gets a `reset` frame and
//! everything after the device's acknowledged cursor again. That cursor
//! survived: it was written after the messages it covers, on the same
//! ordered replication stream (and the same Redis Cluster slot as the
//! inbox).

use herald_core::went_back;
use herald_protocol::{ServerFrame, Stream};
use uuid::Uuid;

use super::Connection;
use crate::connections::end::End;

impl Connection {
    /// Whether the store's `stream`, whose newest seq is `last`, went back
    /// behind `position` (at which this side has message `ours`, when
    /// known).
    pub(super) async fn store_went_back(
        &mut self,
        stream: Stream,
        last: u64,
        position: u64,
        ours: Option<Uuid>,
    ) -> Result<bool, End> {
        let theirs = match ours {
            Some(_) if position > 0 && last >= position => self
                .node
                .store
                .read_after(&self.key(stream), position - 1, 1)
                .await?
                .first()
                .filter(|m| m.seq == position)
                .map(|m| m.id),
            _ => None,
        };
        Ok(went_back(position, ours, last, theirs))
    }

    /// [`rewind`](Self::rewind) to the store's end now, then fresh counts.
    pub(super) async fn rewind_live(&mut self, stream: Stream) -> Result<(), End> {
        let last = self.node.store.last_seq(&self.key(stream)).await?;
        self.rewind(stream, last).await?;
        self.refresh_counts().await
    }

    /// Tells the client that `stream` went back to the device's acknowledged
    /// cursor (at most `last`), then writes everything after it up to
    /// `last`. The caller refreshes the counts.
    pub(super) async fn rewind(&mut self, stream: Stream, last: u64) -> Result<(), End> {
        let (user, device) = (&self.info.user_id, &self.info.device);
        let acked = self.node.store.acked(user, device, stream).await?;
        let seq = acked.min(last);
        tracing::warn!(
            user,
            device,
            ?stream,
            written = self.positions.written(stream),
            last,
            reset_to = seq,
            "the store's stream went back (a failover lost messages?): resetting the client"
        );
        self.node.metrics.stream_reset();
        self.positions.set(stream, seq);
        self.transport.rewind(stream, seq);
        let frame = self
            .codec
            .encode_server(&ServerFrame::Reset { stream, seq });
        self.write_encoded(frame, Some((stream, seq))).await?;
        self.catch_up(stream, last).await
    }
}
