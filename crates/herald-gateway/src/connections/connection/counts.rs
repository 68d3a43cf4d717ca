//! The counts a connection pushes: after the backlog, after each new
//! message (counted from the snapshot, without a store read), after a mark
//! (read again once per wake-up) and when a message they include expires.

use axum::extract::ws::Message as WsMessage;
use bytes::Bytes;
use herald_protocol::{Changed, ChangedState, Message, ServerFrame};
use time::OffsetDateTime;

use super::Connection;
use crate::connections::end::End;

impl Connection {
    /// Pings the client, and reads the counts again if a message they
    /// include has expired since.
    pub(super) async fn on_tick(&mut self) -> Result<(), End> {
        self.write(WsMessage::Ping(Bytes::new())).await?;
        if self.counts.expired(OffsetDateTime::now_utc()) {
            self.refresh_counts().await?;
        }
        Ok(())
    }

    /// Reads the user's counts and pushes them. A failed read only leaves
    /// the badge stale until the next change.
    pub(super) async fn refresh_counts(&mut self) -> Result<(), End> {
        match self.node.inbox.counts(&self.info.user_id).await {
            Ok(snapshot) => {
                let frame = self.counts.replace(snapshot, self.codec);
                self.write(frame).await
            }
            Err(e) => {
                tracing::warn!(%e, "counts not read");
                Ok(())
            }
        }
    }

    /// A message just written is unseen: count it and push the counts, if
    /// they did not include it already. One that replaced the unread item
    /// of its collapse group is first told as a `changed` frame (to every
    /// tab, since every tab writes the message), and its counts are read
    /// again at the end of the wake-up: the item it replaced left them.
    pub(super) async fn count_new(&mut self, message: &Message) -> Result<(), End> {
        if let Some(old) = message.replaces {
            let changed = ServerFrame::Changed(Changed {
                ids: vec![old],
                state: ChangedState::Replaced,
                by: Some(message.id),
                action: None,
            });
            self.send_frame(&changed).await?;
        }
        match self.counts.add(message, self.codec) {
            Some(frame) => self.write(frame).await,
            None => Ok(()),
        }
    }
}
