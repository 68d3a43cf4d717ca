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

/// KEYS: the user's preferences hash, their counts hash. ARGV: the most topics, the user's
/// channel, sharded ('1': SPUBLISH), the number of fields to remove, those
/// fields, then field, value pairs to set. Mirrors core's
/// `apply_preference_change`: counts the `t:` fields the result would hold
/// and refuses past the most (`{'too_many'}`, nothing written); else removes,
/// sets, publishes `["preferences", [field, value, …]]` and returns
/// `{'ok', field, value, …}`. Writes go in chunks, below Lua's stack limit.
/// A category turned off gets the muted marker (2^62) on its counts field,
/// created if it has none (so a user who never got a message holds every
/// marker: their first append reads no preferences), and the append script
/// keeps its next message out without a lookup of its own (see `muted` in
/// the store's scripts); turning one on leaves the marker for the next
/// append to take off. A counts hash created here has no TTL until the
/// first append gives it the log's.
const APPLY: &str = r#"
local max = tonumber(ARGV[1])
local nremove = tonumber(ARGV[4])
local first_set = 5 + nremove
local topics, count = {}, 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 2) == 't:' then topics[f] = true; count = count + 1 end
end
for i = 5, first_set - 1 do
  if topics[ARGV[i]] then topics[ARGV[i]] = nil; count = count - 1 end
end
for i = first_set, #ARGV, 2 do
  local f = ARGV[i]
  if string.sub(f, 1, 2) == 't:' and not topics[f] then topics[f] = true; count = count + 1 end
end
if count > max then return {'too_many'} end
for i = 5, first_set - 1, 500 do
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, math.min(i + 499, first_set - 1)))
end
for i = first_set, #ARGV, 500 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
for i = first_set, #ARGV, 2 do
  if string.sub(ARGV[i], 1, 3) == 'ci:' and ARGV[i + 1] == '0' then
    local field = 'c:' .. string.sub(ARGV[i], 4)
    local v = tonumber(redis.call('HGET', KEYS[2], field) or '')
    if not v or v < 2305843009213693952 then
      redis.call('HINCRBY', KEYS[2], field, '4611686018427387904')
    end
  end
end
local all = redis.call('HGETALL', KEYS[1])
local payload = cmsgpack.pack({'preferences', all})
if ARGV[3] == '1' then
  redis.call('SPUBLISH', ARGV[2], payload)
else
  redis.call('PUBLISH', ARGV[2], payload)
end
table.insert(all, 1, 'ok')
return all
"#;

/// [`PreferenceStore`] on one Redis hash per user.
pub struct RedisPreferences {
    shared: Arc<Shared>,
    apply: Script,
}

impl RedisPreferences {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisPreferences {
            shared,
            apply: Script::new("preferences", "", APPLY),
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
