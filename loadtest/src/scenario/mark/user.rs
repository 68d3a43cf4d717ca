//! A user of the `mark` scenario: a marker connection on node A, a watcher
//! on node B, and the one mark it may have in flight.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_protocol::{Rid, ServerFrame};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::trial::Trial;
use crate::client::{Connector, Ws};

/// The one mark a user has in flight.
pub struct Pending {
    pub trial: Arc<Trial>,
    pub rid: i64,
    /// `read` (counts must drop to 0) or `unread` (counts must rise above 0).
    pub read: bool,
    pub sent: Instant,
    pub replied: bool,
    pub counted: bool,
}

impl Pending {
    /// Whether a `counts` frame with this `unread_total` shows the change.
    pub fn shown_by(&self, unread_total: u64) -> bool {
        (unread_total == 0) == self.read
    }
}

#[derive(Default)]
pub struct UserState {
    /// `unread_total` of the last `counts` frame the watcher got.
    pub watcher_total: Option<u64>,
    pub pending: Option<Pending>,
}

/// One user: the queue into its marker connection and its mark state.
pub struct User {
    pub marker: mpsc::Sender<WsMessage>,
    pub state: Mutex<UserState>,
}

/// What finished a pending mark.
pub enum Finish {
    /// Reply and counts both arrived.
    Completed,
    /// Error reply, timeout, or the connection could not take it.
    Failed,
}

impl UserState {
    /// Ends the pending mark, if any, keeping the trial's books.
    pub fn finish(&mut self, how: Finish) {
        if let Some(p) = self.pending.take() {
            if let Finish::Completed = how {
                p.trial.completed.fetch_add(1, Ordering::Relaxed);
            }
            p.trial.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Ends a pending mark that has waited longer than `limit` (all of
    /// them with `limit` zero), counting what it was still waiting for.
    pub fn expire(&mut self, limit: Duration) {
        let Some(p) = &self.pending else { return };
        if p.sent.elapsed() < limit {
            return;
        }
        if !p.replied {
            p.trial.reply_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        if !p.counted {
            p.trial.counts_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        p.trial.error(format!(
            "mark rid {} timed out (reply {}, counts {})",
            p.rid,
            if p.replied { "arrived" } else { "missing" },
            if p.counted { "arrived" } else { "missing" },
        ));
        self.finish(Finish::Failed);
    }
}

/// A marker connection: writes the marks queued for it and matches the
/// replies to the user's pending mark. Counts frames here are ignored.
pub async fn mark_loop(
    mut ws: Ws,
    mut rx: mpsc::Receiver<WsMessage>,
    connector: &Connector,
    user: &User,
) {
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { return }; // run over
                if let Err(e) = ws.send(frame).await {
                    tracing::warn!("marker write failed: {e}");
                    break;
                }
            }
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { break };
                let Some(Ok(ServerFrame::Reply(reply))) = connector.decode(&msg) else {
                    continue;
                };
                let mut st = user.state.lock().expect("user lock");
                let Some(p) = st.pending.as_mut() else { continue };
                if reply.rid != Some(Rid::Int(p.rid)) || p.replied {
                    continue;
                }
                let trial = p.trial.clone();
                if !reply.ok {
                    trial.reply_errors.fetch_add(1, Ordering::Relaxed);
                    trial.error(format!("mark reply: {:?}", reply.error));
                    st.finish(Finish::Failed);
                    continue;
                }
                trial
                    .reply
                    .lock()
                    .expect("hist lock")
                    .record(p.sent.elapsed().as_micros() as u64);
                trial.replies_ok.fetch_add(1, Ordering::Relaxed);
                if reply.changed == Some(0) {
                    trial.unchanged.fetch_add(1, Ordering::Relaxed);
                }
                p.replied = true;
                if p.counted {
                    st.finish(Finish::Completed);
                }
            }
        }
    }
    tracing::warn!("a marker connection ended");
}

/// A watcher connection: notes every `counts` frame and completes the
/// user's pending mark when one shows its change.
pub async fn watch(mut ws: Ws, connector: &Connector, user: &User) {
    while let Some(Ok(msg)) = ws.next().await {
        let Some(Ok(ServerFrame::Counts(counts))) = connector.decode(&msg) else {
            continue;
        };
        let mut st = user.state.lock().expect("user lock");
        st.watcher_total = Some(counts.unread_total);
        let Some(p) = st.pending.as_mut() else {
            continue;
        };
        if p.counted || !p.shown_by(counts.unread_total) {
            continue; // a frame from before this mark
        }
        p.trial
            .counts
            .lock()
            .expect("hist lock")
            .record(p.sent.elapsed().as_micros() as u64);
        p.trial.counts_received.fetch_add(1, Ordering::Relaxed);
        p.counted = true;
        if p.replied {
            st.finish(Finish::Completed);
        }
    }
    tracing::warn!("a watcher connection ended");
}
