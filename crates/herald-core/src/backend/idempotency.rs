//! Claims of idempotency keys: the record that lets a retried request get
//! the first one's outcome, shared by every node (fingerprints and the wait
//! on a claim in progress are the callers' side, in `idempotency.rs`).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// How long a claim stays pending without an outcome (at most the window):
/// a request that dies (its node crashed, its caller went away) frees its
/// key after this, not after the whole window.
pub const PENDING_LEASE: Duration = Duration::from_secs(60);

/// The lease of a pending claim for `window`.
pub fn pending_lease(window: Duration) -> Duration {
    window.min(PENDING_LEASE).max(Duration::from_millis(1))
}

/// Claims of idempotency keys, per scope (e.g. an API client or a user:
/// the same key in two scopes is two keys).
#[async_trait]
pub trait Idempotency: Send + Sync + 'static {
    /// Claims `key` within `scope` for a request whose body hashes to
    /// `fingerprint`. A fresh claim stays pending for
    /// [`pending_lease`]`(window)`; its outcome, once recorded, is kept for
    /// `window` from then. Expired entries are as if they never existed.
    async fn claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        window: Duration,
    ) -> Result<Claim>;

    /// Records the outcome of the claimed request (opaque bytes, e.g. JSON),
    /// kept for `window` from now. Only a claim still in progress takes an
    /// outcome: if the entry expired meanwhile, or already holds one, this
    /// does nothing.
    async fn complete(
        &self,
        scope: &str,
        key: &str,
        outcome: &[u8],
        window: Duration,
    ) -> Result<()>;

    /// Gives a claim up (the request failed before storing anything), so a
    /// retry may run. Does nothing to a completed entry.
    async fn release(&self, scope: &str, key: &str) -> Result<()>;
}

/// What [`Idempotency::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: do the work, then `complete()` or `release()`.
    Fresh,
    /// Done before with the same fingerprint: this is its outcome.
    Done(Bytes),
    /// Claimed by a request still running (same fingerprint).
    InProgress,
    /// Used before with a different body (done or still running).
    Conflict,
}
