//! Idempotency keys on Redis, so a retry landing on another gateway node
//! sees the first request's claim.
//!
//! One hash per (scope, key) (`Keys::idempotency`): `s` = `p` (pending) or
//! `d` (done), `f` = the request's fingerprint, `o` = the outcome once done.
//! The claim sets PEXPIRE = the pending lease (at most 60 s, so a request
//! that died frees its key soon); completing sets it to the window. Each operation is one function of the
//! library (`lua/idempotency.lua`) on that one key, so it is atomic and works on a Cluster whatever slot the key is in.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::Value;
use herald_core::{validate_idempotency_key, Claim, CoreError, Idempotency, Result};

use crate::script::Script;
use crate::Shared;

/// [`Idempotency`] on Redis hashes with a TTL, shared by every node that
/// uses the same Redis and key prefix.
pub struct RedisIdempotency {
    shared: Arc<Shared>,
    claim: Script,
    complete: Script,
    release: Script,
}

impl RedisIdempotency {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisIdempotency {
            shared,
            claim: Script::new("idempotency_claim"),
            complete: Script::new("idempotency_complete"),
            release: Script::new("idempotency_release"),
        }
    }
}

/// PEXPIRE takes a signed 64-bit count of ms, and 0 would delete the key.
fn window_ms(window: Duration) -> Value {
    window
        .as_millis()
        .clamp(1, i64::MAX as u128 / 2)
        .to_string()
        .into()
}

#[async_trait]
impl Idempotency for RedisIdempotency {
    async fn claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        window: Duration,
    ) -> Result<Claim> {
        validate_idempotency_key(key)?;
        let reply: Vec<Bytes> = self
            .claim
            .run(
                self.shared.pool.next(),
                self.shared.keys.idempotency(scope, key),
                vec![
                    fingerprint.into(),
                    window_ms(herald_core::idempotency_lease(window)),
                ],
            )
            .await?;
        match reply.first().map(|b| &b[..]) {
            Some(b"fresh") => Ok(Claim::Fresh),
            Some(b"pending") => Ok(Claim::InProgress),
            Some(b"conflict") => Ok(Claim::Conflict),
            Some(b"done") => Ok(Claim::Done(reply.get(1).cloned().unwrap_or_default())),
            _ => Err(CoreError::Unavailable(format!(
                "redis: unexpected idempotency claim reply {reply:?}"
            ))),
        }
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        outcome: &[u8],
        window: Duration,
    ) -> Result<()> {
        validate_idempotency_key(key)?;
        let _: i64 = self
            .complete
            .run(
                self.shared.pool.next(),
                self.shared.keys.idempotency(scope, key),
                vec![Bytes::copy_from_slice(outcome).into(), window_ms(window)],
            )
            .await?;
        Ok(())
    }

    async fn release(&self, scope: &str, key: &str) -> Result<()> {
        validate_idempotency_key(key)?;
        let _: i64 = self
            .release
            .run(
                self.shared.pool.next(),
                self.shared.keys.idempotency(scope, key),
                Vec::new(),
            )
            .await?;
        Ok(())
    }
}
