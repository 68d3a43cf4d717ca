//! The streams a connection writes: the backlog when it starts, live
//! deliveries, and the gaps between them read from the store.

use std::sync::Arc;

use herald_core::{Delivery, ReadState, StreamKey, Verdict};
use herald_protocol::{Message, ServerFrame, Stream, Welcome};
use time::OffsetDateTime;

use super::Connection;
use crate::connections::end::End;
use crate::connections::state::Backlog;

/// Messages read from the store per round trip while catching up.
const PAGE: usize = 256;

impl Connection {
    /// Welcome, then everything after the device's acknowledged cursors,
    /// then the counts. The store is read once, concurrently: the cursors,
    /// and the counts with the read state and the seqs they include (which
    /// are the welcome's and the backlog's end), and with them the user's
    /// stored preferences for the quiet hours (in the same step where the
    /// store can: Redis reads them in its counts script, no command more).
    pub(super) async fn start(&mut self) -> Result<(), End> {
        let store = &self.node.store;
        let (user, device) = (&self.info.user_id, &self.info.device);
        let (acked_inbox, acked_all, (snapshot, state, stored)) = futures_util::try_join!(
            store.acked(user, device, Stream::Inbox),
            store.acked(user, device, Stream::All),
            self.node.inbox.counts_state_and_preferences(user),
        )?;
        let stored = match stored {
            Some(stored) => stored,
            None => self.node.preferences.stored(user).await?,
        };
        self.quiet = herald_core::UserPreferences::quiet_window(&stored).map(Box::new);
        let last = snapshot.as_of;
        let (after, backlogs) = self.positions.start([acked_inbox, acked_all], last);
        self.transport.start_at(after);
        let welcome = ServerFrame::Welcome(Welcome {
            conn_id: self.info.conn_id,
            user_id: self.info.user_id.clone(),
            node_id: self.node.id.clone(),
            heartbeat_ms: self.node.settings.ws.heartbeat_ms,
            last_seq: last[Stream::Inbox.index()],
            last_all_seq: last[Stream::All.index()],
        });
        self.send_frame(&welcome).await?;
        for stream in Stream::ALL {
            let upto = last[stream.index()];
            match backlogs[stream.index()] {
                Backlog::Reset => self.rewind(stream, upto).await?,
                Backlog::UnreadAnnouncements => {
                    self.catch_up_unread_announcements(upto, &state).await?
                }
                Backlog::CatchUp => self.catch_up(stream, upto).await?,
            }
        }
        // The backlog is in the counts already: set them only now. A cursor
        // another connection of this device moved past the counts' seqs
        // (read concurrently) means messages they do not include were
        // skipped: read the counts again.
        if after.iter().zip(last).any(|(after, last)| *after > last) {
            self.refresh_counts().await?;
        } else {
            let frame = self.counts.replace(snapshot, self.codec);
            self.write(frame).await?;
        }
        self.flush().await
    }

    /// Writes the newest `ws.new_device_announcements` announcements up to
    /// `last` that are unread for this user, and moves the `all` cursor to
    /// `last`.
    async fn catch_up_unread_announcements(
        &mut self,
        last: u64,
        state: &ReadState,
    ) -> Result<(), End> {
        let marks = state.marks(Stream::All);
        let newest = self.node.settings.ws.new_device_announcements;
        let mut after = marks.read_upto.max(last.saturating_sub(newest));
        let now = OffsetDateTime::now_utc();
        while after < last {
            let page = self
                .node
                .store
                .read_after(&StreamKey::All, after, PAGE)
                .await?;
            let Some(end) = page.last().map(|m| m.seq) else {
                break;
            };
            for message in page.iter().take_while(|m| m.seq <= last) {
                if marks.flags(message.seq).counts_unread() && !message.expired(now) {
                    let mut message = message.clone();
                    message.acted = marks.acted.get(&message.seq).cloned();
                    self.write_message(&message).await?;
                }
            }
            after = end;
        }
        self.positions.advance(Stream::All, last);
        Ok(())
    }

    pub(super) fn key(&self, stream: Stream) -> StreamKey {
        StreamKey::for_user(&self.info.user_id, stream)
    }

    /// Writes what the store has of `stream` after our cursor, up to `upto`.
    pub(super) async fn catch_up(&mut self, stream: Stream, upto: u64) -> Result<(), End> {
        let key = self.key(stream);
        while self.positions.written(stream) < upto {
            let after = self.positions.written(stream);
            let mut page = self.node.store.read_after(&key, after, PAGE).await?;
            let Some(last) = page.last().map(|m| m.seq) else {
                break;
            };
            self.mark_acted(stream, &mut page).await?;
            for message in page.into_iter().take_while(|m| m.seq <= upto) {
                self.write_message(&message).await?;
            }
            // Retention may have dropped part of the range: skip past it.
            self.positions.advance(stream, last.min(upto));
        }
        Ok(())
    }

    /// Sets `acted` on the messages of a backlog or sync page that carry
    /// action buttons, from the user's read state: read only for a page
    /// that has such a message, so other pages cost nothing more.
    async fn mark_acted(&mut self, stream: Stream, page: &mut [Message]) -> Result<(), End> {
        if page.iter().all(|m| m.actions.is_empty()) {
            return Ok(());
        }
        let state = self.node.store.read_state(&self.info.user_id).await?;
        let acted = &state.marks(stream).acted;
        for message in page.iter_mut() {
            message.acted = acted.get(&message.seq).cloned();
        }
        Ok(())
    }

    async fn write_message(&mut self, message: &Message) -> Result<(), End> {
        let seq = message.seq;
        if message.expired(OffsetDateTime::now_utc()) {
            // Not pushed any more; the cursor still moves past it.
            self.positions.advance(message.stream, seq);
            return Ok(());
        }
        // Encoded per connection: catch-up reads are per user anyway.
        let frame = self
            .codec
            .encode_server(&ServerFrame::Message(message.clone()));
        self.write_encoded(frame, Some((message.stream, seq)))
            .await?;
        self.positions.wrote(message);
        self.count_new(message).await
    }

    pub(super) async fn deliver(&mut self, delivery: &Arc<Delivery>) -> Result<(), End> {
        let message = &delivery.message;
        match self.positions.judge(message) {
            // The same seq with another id: the store went back.
            Verdict::Duplicate if self.positions.holds_another(message) => {
                return self.rewind_live(message.stream).await;
            }
            Verdict::Duplicate => return Ok(()),
            Verdict::Next => {}
            // Missing seqs (a publish lost in a broker reconnect, or a
            // delivery that overtook the backlog): read them first.
            Verdict::Gap { .. } => self.catch_up(message.stream, message.seq - 1).await?,
        }
        if message.expires_at.is_some() && message.expired(OffsetDateTime::now_utc()) {
            self.positions.advance(message.stream, message.seq);
            return Ok(());
        }
        // Inside the user's quiet hours a live message goes out silent
        // (never a critical one; backlogs and syncs never are).
        let quiet = !message.critical && self.quiet.as_ref().is_some_and(|w| w.contains_now());
        let bytes = if quiet {
            delivery.silent_frame(self.codec)
        } else {
            delivery.frame(self.codec)
        };
        self.write_encoded(bytes, Some((message.stream, message.seq)))
            .await?;
        self.positions.wrote(message);
        let latency = OffsetDateTime::now_utc() - message.ts;
        self.node
            .metrics
            .delivered(latency.try_into().unwrap_or_default());
        self.count_new(message).await
    }

    /// The broker may have missed messages: read whatever is newer than our
    /// cursors. Its reconnect may also have been a failover that lost the
    /// newest messages: then the client is reset (`rewind.rs`).
    pub(super) async fn resync(&mut self) -> Result<(), End> {
        for stream in Stream::ALL {
            let last = self.node.store.last_seq(&self.key(stream)).await?;
            let position = self.positions.written(stream);
            let ours = self.positions.last_id(stream);
            if self.store_went_back(stream, last, position, ours).await? {
                self.rewind(stream, last).await?;
                self.refresh_counts().await?;
            } else {
                self.catch_up(stream, last).await?;
            }
        }
        Ok(())
    }
}
