//! Preferences on Redis: a hash `{u:<user>}:prefs` per user holding only
//! what the user set (core's field layout, `StoredPreferences`), changed by
//! one script that also publishes the result on the user's channel (same
//! slot), so every node pushes the changes in the order they were made.

use std::sync::Arc;

use async_trait::async_trait;
use fred::interfaces::HashesInterface;
use fred::prelude::Value;
use herald_core::{
    validate_user_id, CoreError, PreferenceChange, PreferenceStore, Result, StoredPreferences,
    MAX_TOPIC_PREFERENCES,
};

use crate::script::Script;
use crate::{unavailable, Shared};

/// [`PreferenceStore`] on one Redis hash per user.
pub struct RedisPreferences {
    shared: Arc<Shared>,
    apply: Script,
}

impl RedisPreferences {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisPreferences {
            shared,
            apply: Script::new("preferences"),
        }
    }
}

#[async_trait]
impl PreferenceStore for RedisPreferences {
    async fn load(&self, user: &str) -> Result<StoredPreferences> {
        validate_user_id(user)?;
        self.shared
            .pool
            .hgetall(self.shared.keys.preferences(user))
            .await
            .map_err(unavailable)
    }

    async fn apply(&self, user: &str, change: &PreferenceChange) -> Result<StoredPreferences> {
        validate_user_id(user)?;
        let keys = &self.shared.keys;
        let mut args = Vec::with_capacity(4 + change.remove.len() + 2 * change.set.len());
        args.push(Value::from(MAX_TOPIC_PREFERENCES as i64));
        args.push(Value::from(
            keys.channel(&herald_core::StreamKey::inbox(user)),
        ));
        args.push(Value::from(if self.shared.sharded { "1" } else { "0" }));
        args.push(Value::from(change.remove.len() as i64));
        args.extend(change.remove.iter().map(|f| Value::from(f.as_str())));
        for (field, value) in &change.set {
            args.push(Value::from(field.as_str()));
            args.push(Value::from(value.as_str()));
        }
        let reply: Vec<String> = self
            .apply
            .run(
                self.shared.pool.next(),
                vec![keys.preferences(user), keys.unread(user)],
                args,
            )
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(pairs(&reply[1..])),
            Some("too_many") => Err(CoreError::Invalid(format!(
                "topics: preferences hold at most {MAX_TOPIC_PREFERENCES} topics per user"
            ))),
            _ => Err(CoreError::Unavailable(format!(
                "unexpected reply of the preferences script: {reply:?}"
            ))),
        }
    }
}

/// A flat `field, value, …` list as a map.
pub(crate) fn pairs(flat: &[String]) -> StoredPreferences {
    flat.chunks_exact(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect()
}
