//! Blocked users on Redis: a set `{u:<user>}:blocked` per user (one slot,
//! one call per operation).

use std::sync::Arc;

use async_trait::async_trait;
use fred::interfaces::SetsInterface;
use fred::prelude::Value;
use herald_core::{
    validate_block, validate_user_id, Blocklist, CoreError, Result, MAX_BLOCKED_PER_USER,
};

use crate::script::Script;
use crate::{unavailable, Shared};

/// [`Blocklist`] on one Redis set per user.
pub struct RedisBlocklist {
    shared: Arc<Shared>,
    block: Script,
}

impl RedisBlocklist {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisBlocklist {
            shared,
            block: Script::new("block"),
        }
    }

    fn key(&self, user: &str) -> String {
        self.shared.keys.blocked(user)
    }
}

#[async_trait]
impl Blocklist for RedisBlocklist {
    async fn block(&self, user: &str, blocked: &str) -> Result<bool> {
        validate_block(user, blocked)?;
        let outcome: i64 = self
            .block
            .run(
                self.shared.pool.next(),
                vec![self.key(user)],
                vec![
                    Value::from(blocked),
                    Value::from(MAX_BLOCKED_PER_USER as i64),
                ],
            )
            .await?;
        match outcome {
            -1 => Err(CoreError::Invalid(format!(
                "user: at most {MAX_BLOCKED_PER_USER} users may be blocked"
            ))),
            n => Ok(n == 1),
        }
    }

    async fn unblock(&self, user: &str, blocked: &str) -> Result<bool> {
        validate_block(user, blocked)?;
        let removed: i64 = self
            .shared
            .pool
            .srem(self.key(user), blocked)
            .await
            .map_err(unavailable)?;
        Ok(removed > 0)
    }

    async fn blocked_by(&self, user: &str) -> Result<Vec<String>> {
        validate_user_id(user)?;
        let mut users: Vec<String> = self
            .shared
            .pool
            .smembers(self.key(user))
            .await
            .map_err(unavailable)?;
        users.sort_unstable();
        Ok(users)
    }

    async fn is_blocked(&self, user: &str, sender: &str) -> Result<bool> {
        validate_user_id(user)?;
        self.shared
            .pool
            .sismember(self.key(user), sender)
            .await
            .map_err(unavailable)
    }
}
