//! Idempotent sends: a retry of a request with the same idempotency key
//! within a window gets the first request's outcome, and nothing is stored
//! or pushed again — also when the retry reaches another gateway node, so
//! shared backends (Redis) share the claims.
//!
//! A caller computes a [`fingerprint`] of the request body, then
//! [`Idempotency::claim`]s the key: [`Claim::Fresh`] means do the work and
//! then [`complete`](Idempotency::complete) (or
//! [`release`](Idempotency::release) if it failed before storing anything);
//! any other answer means do not do the work again.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::backend::{Claim, Idempotency};
use crate::error::{CoreError, Result};

/// Longest idempotency key, in bytes.
pub const MAX_KEY_LEN: usize = 128;

/// How long a retry waits for the first request with its key to finish.
const IN_PROGRESS_WAIT: Duration = Duration::from_secs(5);

/// Claims `key` for one operation (a send, a publish): `None` means do
/// the work, `Some` is the first request's recorded outcome. A claim still
/// in progress is waited on for a few seconds, then `Unavailable` (retry);
/// another body under the key is `Conflict`.
pub(crate) async fn claim_or_wait(
    idempotency: &dyn Idempotency,
    scope: &str,
    key: &str,
    print: &str,
    window: Duration,
) -> Result<Option<Bytes>> {
    let deadline = tokio::time::Instant::now() + IN_PROGRESS_WAIT;
    let mut pause = Duration::from_millis(5);
    loop {
        match idempotency.claim(scope, key, print, window).await? {
            Claim::Fresh => return Ok(None),
            Claim::Done(bytes) => return Ok(Some(bytes)),
            Claim::Conflict => {
                return Err(CoreError::Conflict(format!(
                    "idempotency_key {key:?} was used for a different request"
                )))
            }
            Claim::InProgress if tokio::time::Instant::now() >= deadline => {
                return Err(CoreError::Unavailable(format!(
                    "idempotency_key {key:?}: the first request is still in progress; retry"
                )))
            }
            Claim::InProgress => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// Reads an outcome recorded as JSON.
pub(crate) fn decode_outcome<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| CoreError::Unavailable(format!("idempotency: stored outcome unreadable: {e}")))
}

/// The fingerprint of a request: hex SHA-256 (64 lowercase digits) of the
/// value's `serde_json` encoding. Pass the parts of the request that make it
/// what it is (target and message, not the key itself), in types whose
/// encoding is deterministic: a `HashMap` iterates in a random order, so use
/// structs, `BTreeMap` or `serde_json::Value`. A value `serde_json` cannot
/// encode (a map with non-string keys) gets a random fingerprint, so its
/// retries are conflicts rather than someone else's outcome.
pub fn fingerprint(parts: &impl serde::Serialize) -> String {
    let mut hasher = HashWriter(Sha256::new());
    if serde_json::to_writer(&mut hasher, parts).is_err() {
        return format!("unencodable-{}", uuid::Uuid::new_v4().simple());
    }
    let digest = hasher.0.finalize();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Feeds what `serde_json` writes into the hash, without a buffer.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An idempotency key is 1 to 128 bytes with no control characters.
/// Exported as `validate_idempotency_key`.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(CoreError::Invalid("idempotency_key: empty".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(CoreError::Invalid(format!(
            "idempotency_key: longer than {MAX_KEY_LEN} bytes"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(CoreError::Invalid(
            "idempotency_key: contains a control character".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_hex_sha256_of_the_json() {
        // sha256 of `{"a":1}`
        assert_eq!(
            fingerprint(&serde_json::json!({"a": 1})),
            "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
        );
        let a = fingerprint(&("alice", serde_json::json!({"body": "hi"})));
        assert_eq!(a.len(), 64);
        assert_eq!(
            a,
            fingerprint(&("alice", serde_json::json!({"body": "hi"})))
        );
        assert_ne!(
            a,
            fingerprint(&("alice", serde_json::json!({"body": "ho"})))
        );
    }

    #[test]
    fn unencodable_values_never_match() {
        let mut map = std::collections::BTreeMap::new();
        map.insert((1, 2), "non-string key");
        assert_ne!(fingerprint(&map), fingerprint(&map));
    }

    #[test]
    fn keys_are_short_printable_strings() {
        assert!(validate_key("k").is_ok());
        assert!(validate_key(&"x".repeat(128)).is_ok());
        assert!(validate_key("order-42 {é}:ü").is_ok());
        for bad in [
            String::new(),
            "x".repeat(129),
            "a\nb".into(),
            "a\u{0}".into(),
            "\u{7f}".into(),
        ] {
            match validate_key(&bad) {
                Err(CoreError::Invalid(msg)) => assert!(msg.starts_with("idempotency_key: ")),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
