//! When the client was last heard from: a WebSocket client silent for two
//! heartbeats is taken for gone (4000).

use std::time::Duration;

use tokio::time::Instant;

pub(crate) struct Liveness {
    last_seen: Instant,
}

impl Liveness {
    /// A client heard from just now (its handshake).
    pub(crate) fn new() -> Self {
        Liveness {
            last_seen: Instant::now(),
        }
    }

    /// The client sent a frame (a pong counts).
    pub(crate) fn heard(&mut self) {
        self.last_seen = Instant::now();
    }

    /// Whether nothing came from the client for `span`.
    pub(crate) fn silent_for(&self, span: Duration) -> bool {
        self.last_seen.elapsed() >= span
    }
}
