//! Topic subscriptions on Redis.
//!
//! - `{t:<topic>}:subs`: a sorted set, every score 0, member = user id.
//!   With equal scores Redis orders members by their bytes, so
//!   `ZRANGEBYLEX key (<after> + LIMIT 0 <limit>` is a stable, O(log n +
//!   limit) page after any cursor, whatever else changes in between; ZCARD
//!   is the count.
//! - `{u:<user>}:topics`: a set of the user's topics (SMEMBERS, sorted
//!   here; SCARD for the per-user cap).
//!
//! The two keys are in different Cluster slots, so nothing spans them:
//! - `subscribe` adds to the topic's set first, then to the user's (a
//!   script that also enforces [`MAX_TOPICS_PER_USER`]; a refused add is
//!   taken back out of the topic's set). If the second step fails, the user
//!   is a subscriber of the topic without the topic in their own list;
//!   the caller saw `Unavailable`, and a retry repairs it (both adds are
//!   idempotent). The user's set decides the return value.
//! - `unsubscribe` removes from the user's set first, then from the
//!   topic's; a failure in between leaves the user a subscriber without
//!   the topic in their list, and a retry removes it.
//!
//! So a fan-out may (rarely) reach a user whose subscribe or unsubscribe
//! failed half-way. It misses one whose subscribe succeeded only in a race
//! at the cap: a refused subscribe's ZREM landing after a concurrent,
//! successful subscribe of the same user and topic (room made by an
//! unsubscribe in between); any later subscribe of the pair repairs it.

use std::sync::Arc;

use async_trait::async_trait;
use fred::interfaces::{SetsInterface, SortedSetsInterface};
use fred::prelude::Value;
use herald_core::{
    validate_topic, validate_user_id, CoreError, Result, Topics, MAX_TOPICS_PER_USER,
};

use crate::script::Script;
use crate::{unavailable, Shared};

/// [`Topics`] on a sorted set per topic and a set per user, shared by every
/// node on the same Redis and key prefix.
pub struct RedisTopics {
    shared: Arc<Shared>,
    add_topic: Script,
}

impl RedisTopics {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisTopics {
            shared,
            add_topic: Script::new("topics_add"),
        }
    }
}

#[async_trait]
impl Topics for RedisTopics {
    async fn subscribe(&self, user: &str, topic: &str) -> Result<bool> {
        validate_user_id(user)?;
        validate_topic(topic)?;
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let subs = keys.topic_subscribers(topic);
        let _: i64 = pool
            .zadd(&subs, None, None, false, false, (0.0, user))
            .await
            .map_err(unavailable)?;
        let added: i64 = self
            .add_topic
            .run(
                pool.next(),
                keys.user_topics(user),
                vec![topic.into(), Value::from(MAX_TOPICS_PER_USER as i64)],
            )
            .await?;
        match added {
            1 => Ok(true),
            0 => Ok(false),
            _ => {
                // Refused: take back the first step.
                let _: i64 = pool.zrem(&subs, user).await.map_err(unavailable)?;
                Err(CoreError::Invalid(format!(
                    "topic: a user may subscribe to at most {MAX_TOPICS_PER_USER} topics"
                )))
            }
        }
    }

    async fn unsubscribe(&self, user: &str, topic: &str) -> Result<bool> {
        validate_user_id(user)?;
        validate_topic(topic)?;
        let keys = &self.shared.keys;
        let pool = &self.shared.pool;
        let mine: i64 = pool
            .srem(keys.user_topics(user), topic)
            .await
            .map_err(unavailable)?;
        let subscribed: i64 = pool
            .zrem(keys.topic_subscribers(topic), user)
            .await
            .map_err(unavailable)?;
        Ok(mine > 0 || subscribed > 0)
    }

    async fn topics_of(&self, user: &str) -> Result<Vec<String>> {
        validate_user_id(user)?;
        let mut topics: Vec<String> = self
            .shared
            .pool
            .smembers(self.shared.keys.user_topics(user))
            .await
            .map_err(unavailable)?;
        topics.sort_unstable();
        Ok(topics)
    }

    async fn subscribers(
        &self,
        topic: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        validate_topic(topic)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Always our own `(` or `-`: fred would pass an id starting with
        // `(` or `[` through as if it were already a bound.
        let min = match after {
            Some(after) => format!("({after}"),
            None => "-".to_owned(),
        };
        let count = limit.min(i64::MAX as usize) as i64;
        self.shared
            .pool
            .zrangebylex(
                self.shared.keys.topic_subscribers(topic),
                min,
                "+",
                Some((0, count)),
            )
            .await
            .map_err(unavailable)
    }

    async fn subscriber_count(&self, topic: &str) -> Result<u64> {
        validate_topic(topic)?;
        self.shared
            .pool
            .zcard(self.shared.keys.topic_subscribers(topic))
            .await
            .map_err(unavailable)
    }
}
