//! What one client may use of a node (`limits.*`): connections at the
//! handshake, and requests per second per user (governor's keyed GCRA
//! limiter, shared by the user's connections and `POST /v1/me/requests`).

use std::hash::BuildHasher;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use herald_core::Hub;

use crate::error::ApiError;
use crate::settings::LimitsSettings;

/// Requests per second per user; `None` when unlimited.
pub struct RequestLimiter {
    limiter: Option<DefaultKeyedRateLimiter<u64>>,
    /// Users are keyed by a 64-bit hash of their id, so a check allocates
    /// nothing; two users sharing a bucket is as likely as a 64-bit
    /// collision.
    hasher: std::collections::hash_map::RandomState,
}

impl RequestLimiter {
    pub fn new(settings: &LimitsSettings) -> Self {
        let limiter = NonZeroU32::new(settings.requests_per_sec).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap());
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        RequestLimiter {
            limiter,
            hasher: Default::default(),
        }
    }

    /// Takes one request of `user` from its budget; false when it is spent.
    pub fn allow(&self, user: &str) -> bool {
        match &self.limiter {
            Some(limiter) => limiter.check_key(&self.hasher.hash_one(user)).is_ok(),
            None => true,
        }
    }

    /// Forgets users whose budget is full again (called now and then, so
    /// the map holds only recently active users).
    pub fn prune(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// What a request over `limits.requests_per_sec` is told.
pub fn over_rate(limits: &LimitsSettings) -> String {
    format!(
        "more than {} requests per second (limits.requests_per_sec); slow down",
        limits.requests_per_sec
    )
}

/// Whether a node holding the connections in `hub` takes one more of
/// `user`: 503 when the node is full, 429 when the user has as many as
/// allowed.
pub fn admit(limits: &LimitsSettings, hub: &Hub, user: &str) -> Result<(), ApiError> {
    if limits.max_connections > 0 && hub.connection_count() >= limits.max_connections {
        return Err(ApiError::unavailable(format!(
            "this node holds its maximum of {} connections; connect to another",
            limits.max_connections
        )));
    }
    let per_user = limits.max_connections_per_user;
    if per_user > 0 && hub.connections_of(user) >= per_user {
        return Err(ApiError::rate_limited(format!(
            "at most {per_user} connections per user on a node"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_a_budget_of_twice_the_rate() {
        let limiter = RequestLimiter::new(&LimitsSettings {
            requests_per_sec: 5,
            ..LimitsSettings::default()
        });
        let allowed = (0..20).filter(|_| limiter.allow("ann")).count();
        assert_eq!(allowed, 10);
        assert!(
            limiter.allow("bo"),
            "another user has a budget of their own"
        );
        let off = RequestLimiter::new(&LimitsSettings {
            requests_per_sec: 0,
            ..LimitsSettings::default()
        });
        assert!((0..10_000).all(|_| off.allow("ann")));
    }
}
