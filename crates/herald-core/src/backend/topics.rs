//! Topic subscriptions: which users follow which topics.
//!
//! A topic is a string such as `article:42`; following a user is the topic
//! `user:<id>`. [`Topics`] stores the subscriptions both ways: the topics of
//! a user (a small list, at most [`MAX_TOPICS_PER_USER`]) and the
//! subscribers of a topic (possibly very many), paged in user-id byte order
//! with an exclusive `after` cursor, so a fan-out can walk 100,000
//! subscribers in chunks without gaps or repeats while others subscribe and
//! unsubscribe.

use async_trait::async_trait;

use crate::error::Result;

/// Most topics one user may subscribe to; one more is `Invalid`.
pub const MAX_TOPICS_PER_USER: usize = 10_000;

/// Topic subscriptions, shared by every node. User ids are checked with
/// [`validate_user_id`](crate::validate_user_id), topics with
/// [`validate_topic`](crate::validate_topic); either wrong is `Invalid`.
#[async_trait]
pub trait Topics: Send + Sync + 'static {
    /// Subscribes `user` to `topic`; true if it was not subscribed before.
    /// A user already holding [`MAX_TOPICS_PER_USER`] topics gets
    /// `Invalid` for a new one (a topic they hold is still `Ok(false)`).
    async fn subscribe(&self, user: &str, topic: &str) -> Result<bool>;
    /// Unsubscribes; true if it was subscribed.
    async fn unsubscribe(&self, user: &str, topic: &str) -> Result<bool>;
    /// The user's topics, sorted.
    async fn topics_of(&self, user: &str) -> Result<Vec<String>>;
    /// Up to `limit` subscribers of `topic` after `after` (exclusive; None =
    /// from the start), in user-id byte order. `after` may be any string
    /// (the last id of the previous page, typically); a page shorter than
    /// `limit` is the last. A user subscribed during the whole walk appears
    /// exactly once; one who (un)subscribes during it may or may not.
    async fn subscribers(
        &self,
        topic: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>;
    /// How many subscribers `topic` has (O(1)).
    async fn subscriber_count(&self, topic: &str) -> Result<u64>;
}
