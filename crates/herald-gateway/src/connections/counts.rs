//! The user's counts on one connection: pushed after the backlog, kept
//! compactly and bumped per delivered message, read again after a mark
//! (once per wake-up) and when a message they include expires.

use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes};
use bytes::Bytes;
use herald_core::CountsSnapshot;
use herald_protocol::{Codec, Message};
use tokio::time::Instant;

use super::connection::Connection;
use super::end::End;

impl Connection {
    /// Brings the timer's next tick forward to just after the soonest
    /// expiry the counts include, if that comes before the next heartbeat.
    pub(super) fn rearm_for_expiry(&self, tick: &mut tokio::time::Interval, heartbeat: Duration) {
        let Some(at) = self.counts.as_ref().and_then(|c| c.stale_at) else {
            return;
        };
        let wait: Duration = (at - time::OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or_default();
        let wait = wait + Duration::from_millis(10);
        if wait < heartbeat {
            tick.reset_at(Instant::now() + wait);
        }
    }

    /// Pings the client, and reads the counts again if a message they
    /// include has expired since.
    pub(super) async fn on_tick(&mut self) -> Result<(), End> {
        self.write(WsMessage::Ping(Bytes::new())).await?;
        let stale = self.counts.as_ref().and_then(|c| c.stale_at);
        if stale.is_some_and(|t| t <= time::OffsetDateTime::now_utc()) {
            self.refresh_counts().await?;
        } else if stale.is_some() {
            self.rearm = true;
        }
        Ok(())
    }

    /// Reads the user's counts and pushes them. A failed read only leaves
    /// the badge stale until the next change.
    pub(super) async fn refresh_counts(&mut self) -> Result<(), End> {
        match self.node.inbox.counts(&self.info.user_id).await {
            Ok(snapshot) => {
                let frame = counts_frame(&snapshot, self.codec);
                self.rearm = snapshot.stale_at.is_some();
                self.counts = Some(Box::new(snapshot));
                self.write(frame).await
            }
            Err(e) => {
                tracing::warn!(%e, "counts not read");
                Ok(())
            }
        }
    }

    /// A message just written is unseen: count it and push the counts, if
    /// they did not include it already.
    pub(super) async fn count_new(&mut self, message: &Message) -> Result<(), End> {
        let Some(snapshot) = self.counts.as_mut() else {
            return Ok(());
        };
        let stale_before = snapshot.stale_at;
        if !snapshot.add(message) {
            return Ok(());
        }
        self.rearm |= snapshot.stale_at != stale_before;
        let frame = counts_frame(snapshot, self.codec);
        self.write(frame).await
    }
}

/// The `counts` frame of `snapshot` as a WebSocket message (JSON as a
/// `String`, so it is not validated as UTF-8 again).
pub(super) fn counts_frame(snapshot: &CountsSnapshot, codec: Codec) -> WsMessage {
    match codec {
        Codec::Json => WsMessage::Text(Utf8Bytes::from(snapshot.json_frame())),
        Codec::MsgPack => WsMessage::Binary(snapshot.frame(codec)),
    }
}
