use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::backend::{Topics, MAX_TOPICS_PER_USER};
use crate::error::Result;
use crate::model::validate_user_id;
use crate::topics::{too_many_topics, validate_topic};

/// Topic subscriptions for one process, both directions under one lock (so
/// they always agree). Empty entries are removed.
#[derive(Default)]
pub struct MemoryTopics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// topic -> its subscribers, in byte order.
    subscribers: BTreeMap<String, BTreeSet<String>>,
    /// user -> the user's topics.
    topics: HashMap<String, BTreeSet<String>>,
}

impl MemoryTopics {
    pub fn new() -> Self {
        Self::default()
    }

    /// The topic's subscribers now, in byte order (a fan-out's snapshot).
    pub(crate) fn snapshot(&self, topic: &str) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        inner
            .subscribers
            .get(topic)
            .map_or_else(Vec::new, |s| s.iter().cloned().collect())
    }
}

#[async_trait]
impl Topics for MemoryTopics {
    async fn subscribe(&self, user: &str, topic: &str) -> Result<bool> {
        validate_user_id(user)?;
        validate_topic(topic)?;
        let mut inner = self.inner.lock().unwrap();
        let mine = inner.topics.entry(user.to_owned()).or_default();
        if mine.contains(topic) {
            return Ok(false);
        }
        if mine.len() >= MAX_TOPICS_PER_USER {
            return Err(too_many_topics());
        }
        mine.insert(topic.to_owned());
        inner
            .subscribers
            .entry(topic.to_owned())
            .or_default()
            .insert(user.to_owned());
        Ok(true)
    }

    async fn unsubscribe(&self, user: &str, topic: &str) -> Result<bool> {
        validate_user_id(user)?;
        validate_topic(topic)?;
        let mut inner = self.inner.lock().unwrap();
        let Some(mine) = inner.topics.get_mut(user) else {
            return Ok(false);
        };
        if !mine.remove(topic) {
            return Ok(false);
        }
        if mine.is_empty() {
            inner.topics.remove(user);
        }
        if let Some(subs) = inner.subscribers.get_mut(topic) {
            subs.remove(user);
            if subs.is_empty() {
                inner.subscribers.remove(topic);
            }
        }
        Ok(true)
    }

    async fn topics_of(&self, user: &str) -> Result<Vec<String>> {
        validate_user_id(user)?;
        let inner = self.inner.lock().unwrap();
        Ok(inner
            .topics
            .get(user)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn subscribers(
        &self,
        topic: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        validate_topic(topic)?;
        let inner = self.inner.lock().unwrap();
        let Some(subs) = inner.subscribers.get(topic) else {
            return Ok(Vec::new());
        };
        let from = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        Ok(subs
            .range::<str, _>((from, Bound::Unbounded))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn subscriber_count(&self, topic: &str) -> Result<u64> {
        validate_topic(topic)?;
        let inner = self.inner.lock().unwrap();
        Ok(inner.subscribers.get(topic).map_or(0, |s| s.len() as u64))
    }
}
