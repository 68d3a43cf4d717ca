//! The user's counts as one connection keeps them: pushed after the
//! backlog, bumped per delivered message, read again after a mark (once per
//! wake-up) and when a message they include expires.

use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes};
use herald_core::CountsSnapshot;
use herald_protocol::{Codec, Message};
use time::OffsetDateTime;
use tokio::time::{Instant, Interval};

/// The counts last pushed, and what they still ask of the connection: a
/// store read, or the timer moved to their next expiry.
#[derive(Default)]
pub(crate) struct CountsState {
    /// As of which seqs; boxed and made after the backlog, so a connection
    /// in its handshake does not carry them.
    snapshot: Option<Box<CountsSnapshot>>,
    /// The counts' `stale_at` moved: the serve loop re-arms its timer.
    rearm: bool,
    /// A counts-changed event came: read the counts once, at the end of
    /// this wake-up, however many came (a burst of marks then costs one
    /// store read, and the queue empties at delivery speed).
    changed: bool,
}

impl CountsState {
    /// Keeps counts read from the store; returns their `counts` frame.
    pub(crate) fn replace(&mut self, snapshot: CountsSnapshot, codec: Codec) -> WsMessage {
        let frame = counts_frame(&snapshot, codec);
        self.rearm = snapshot.stale_at.is_some();
        self.snapshot = Some(Box::new(snapshot));
        frame
    }

    /// Counts a message just written (a new message is unseen) and returns
    /// the `counts` frame to push; `None` when the counts included it
    /// already, or are not read yet, or when it replaced a message of its
    /// collapse group (then they are read again).
    pub(crate) fn add(&mut self, message: &Message, codec: Codec) -> Option<WsMessage> {
        let snapshot = self.snapshot.as_mut()?;
        let stale_before = snapshot.stale_at;
        if !snapshot.add(message) {
            return None;
        }
        self.rearm |= snapshot.stale_at != stale_before;
        if message.replaces.is_some() {
            // It took the place of an unread one, which left the counts:
            // read them once, at the end of this wake-up (a burst of a
            // group's sends then costs one read).
            self.changed = true;
            return None;
        }
        Some(counts_frame(snapshot, codec))
    }

    /// A mark changed the counts in the store.
    pub(crate) fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// Whether a mark changed the counts since the last call.
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Whether a message the counts include has expired by `now`: then
    /// they are read again. One that expires later re-arms the timer.
    pub(crate) fn expired(&mut self, now: OffsetDateTime) -> bool {
        let Some(stale_at) = self.stale_at() else {
            return false;
        };
        if stale_at <= now {
            return true;
        }
        self.rearm = true;
        false
    }

    /// When the soonest expiry moved: brings the timer's next tick forward
    /// to just after it, if that comes before the next heartbeat.
    pub(crate) fn rearm_timer(&mut self, tick: &mut Interval, heartbeat: Duration) {
        if !std::mem::take(&mut self.rearm) {
            return;
        }
        let Some(at) = self.stale_at() else {
            return;
        };
        let wait: Duration = (at - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or_default();
        let wait = wait + Duration::from_millis(10);
        if wait < heartbeat {
            tick.reset_at(Instant::now() + wait);
        }
    }

    fn stale_at(&self) -> Option<OffsetDateTime> {
        self.snapshot.as_ref().and_then(|c| c.stale_at)
    }
}

/// The `counts` frame of `snapshot` as a WebSocket message (JSON as a
/// `String`, so it is not validated as UTF-8 again).
fn counts_frame(snapshot: &CountsSnapshot, codec: Codec) -> WsMessage {
    match codec {
        Codec::Json => WsMessage::Text(Utf8Bytes::from(snapshot.json_frame())),
        Codec::MsgPack => WsMessage::Binary(snapshot.frame(codec)),
    }
}
