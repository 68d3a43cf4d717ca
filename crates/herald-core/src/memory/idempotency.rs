use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use crate::backend::{Claim, Idempotency};
use crate::error::Result;
use crate::idempotency::validate_key;

/// Fewest entries at which a claim sweeps out expired ones.
const MIN_PRUNE_AT: usize = 1024;

/// Idempotency claims for one process. Share one instance between
/// everything that should see the same claims.
pub struct MemoryIdempotency {
    inner: Mutex<Inner>,
}

struct Inner {
    /// (scope, key) -> entry.
    entries: HashMap<(String, String), Entry>,
    /// A claim sweeps expired entries when there are this many; then it is
    /// set to twice what is left, so sweeping costs O(1) per claim
    /// amortised and the map holds at most about twice the live entries.
    prune_at: usize,
}

struct Entry {
    fingerprint: String,
    /// None while the claim is in progress.
    outcome: Option<Bytes>,
    expires: Instant,
}

impl Default for MemoryIdempotency {
    fn default() -> Self {
        MemoryIdempotency {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
            }),
        }
    }
}

impl MemoryIdempotency {
    pub fn new() -> Self {
        Self::default()
    }

    /// Live (unexpired) entries, for tests and metrics.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        let inner = self.inner.lock().unwrap();
        inner.entries.values().filter(|e| e.expires > now).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn entry_key(scope: &str, key: &str) -> (String, String) {
    (scope.to_owned(), key.to_owned())
}

impl Inner {
    /// The entry if present and not expired; an expired one is removed.
    fn live(&mut self, id: &(String, String), now: Instant) -> Option<&mut Entry> {
        if self.entries.get(id).is_some_and(|e| e.expires <= now) {
            self.entries.remove(id);
        }
        self.entries.get_mut(id)
    }

    fn prune(&mut self, now: Instant) {
        if self.entries.len() < self.prune_at {
            return;
        }
        self.entries.retain(|_, e| e.expires > now);
        self.prune_at = (self.entries.len() * 2).max(MIN_PRUNE_AT);
    }
}

#[async_trait]
impl Idempotency for MemoryIdempotency {
    async fn claim(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        window: Duration,
    ) -> Result<Claim> {
        validate_key(key)?;
        let now = Instant::now();
        let id = entry_key(scope, key);
        let mut inner = self.inner.lock().unwrap();
        if let Some(entry) = inner.live(&id, now) {
            return Ok(if entry.fingerprint != fingerprint {
                Claim::Conflict
            } else {
                match &entry.outcome {
                    Some(outcome) => Claim::Done(outcome.clone()),
                    None => Claim::InProgress,
                }
            });
        }
        inner.prune(now);
        inner.entries.insert(
            id,
            Entry {
                fingerprint: fingerprint.to_owned(),
                outcome: None,
                expires: now + crate::backend::pending_lease(window),
            },
        );
        Ok(Claim::Fresh)
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        outcome: &[u8],
        window: Duration,
    ) -> Result<()> {
        validate_key(key)?;
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        if let Some(entry) = inner.live(&entry_key(scope, key), now) {
            if entry.outcome.is_none() {
                entry.outcome = Some(Bytes::copy_from_slice(outcome));
                entry.expires = now + window.max(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    async fn release(&self, scope: &str, key: &str) -> Result<()> {
        validate_key(key)?;
        let id = entry_key(scope, key);
        let mut inner = self.inner.lock().unwrap();
        if inner.entries.get(&id).is_some_and(|e| e.outcome.is_none()) {
            inner.entries.remove(&id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_entries_are_pruned() {
        let idem = MemoryIdempotency::new();
        let window = Duration::from_millis(100);
        for i in 0..MIN_PRUNE_AT {
            let claim = idem.claim("s", &format!("k{i}"), "f", window).await;
            assert_eq!(claim.unwrap(), Claim::Fresh);
        }
        // Expiry is by a monotonic clock: after the window, all are gone.
        tokio::time::sleep(window).await;
        assert!(idem.is_empty());
        assert_eq!(idem.inner.lock().unwrap().entries.len(), MIN_PRUNE_AT);
        assert_eq!(
            idem.claim("s", "new", "f", window).await.unwrap(),
            Claim::Fresh
        );
        assert_eq!(idem.inner.lock().unwrap().entries.len(), 1);
    }
}
