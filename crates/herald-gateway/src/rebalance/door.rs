//! A node that moves connections away takes no new ones until its move
//! has settled. Without this, clients asked to move land on any node the
//! Service picks — the mover included — and going from 2 to 4 nodes moves
//! about twice the ideal number of clients (half of the movers return to a
//! mover and are moved again in a later round). With the door shut, the
//! mover's readiness is off, so the Service leaves it out, and a client that
//! still reaches it is refused with 503 and `Retry-After` and tries again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// `closed_until` while open: no instant is before the base.
const OPEN: u64 = 0;
/// `closed_until` while a move runs: shut with no end yet.
const MOVING: u64 = u64::MAX;

/// Whether this node refuses new connections because it is moving some.
pub struct Door {
    base: Instant,
    /// Milliseconds after `base` until which the door is shut; [`OPEN`] or
    /// [`MOVING`]. An atomic, so every handshake reads it without a lock.
    closed_until: AtomicU64,
}

impl Default for Door {
    fn default() -> Self {
        Door {
            base: Instant::now(),
            closed_until: AtomicU64::new(OPEN),
        }
    }
}

impl Door {
    /// A move starts: shut until [`Door::shut_until`] gives the end.
    pub fn shut(&self) {
        self.closed_until.store(MOVING, Ordering::Relaxed);
    }

    /// The move ended; shut until `until`, when the movers have landed and
    /// the counts settled.
    pub fn shut_until(&self, until: Instant) {
        let ms = until.saturating_duration_since(self.base).as_millis() as u64;
        self.closed_until.store(ms.max(OPEN + 1), Ordering::Relaxed);
    }

    /// Whether the door is shut at `now`.
    pub fn is_shut(&self, now: Instant) -> bool {
        let now_ms = now.saturating_duration_since(self.base).as_millis() as u64;
        now_ms < self.closed_until.load(Ordering::Relaxed)
    }

    /// At a handshake: the 503 to answer while the door is shut.
    pub fn admit(&self) -> Result<(), Moving> {
        match self.is_shut(Instant::now()) {
            true => Err(Moving),
            false => Ok(()),
        }
    }
}

/// An upgrade refused while the node moves connections to others.
#[derive(Debug)]
pub struct Moving;

impl IntoResponse for Moving {
    /// 503 with `Retry-After: 1`: another node (or this one, once settled)
    /// takes the client.
    fn into_response(self) -> Response {
        let mut response = ApiError::unavailable(
            "this node is moving connections to other nodes (rebalancing); connect to another",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1u32));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn shut_while_moving_and_until_the_settle_ends() {
        let door = Door::default();
        let t0 = Instant::now();
        assert!(!door.is_shut(t0));
        assert!(door.admit().is_ok());
        door.shut();
        assert!(door.is_shut(t0 + Duration::from_secs(3600)));
        assert!(door.admit().is_err());
        let end = t0 + Duration::from_millis(500);
        door.shut_until(end);
        assert!(door.is_shut(end - Duration::from_millis(1)));
        assert!(!door.is_shut(end));
    }
}
