//! The store's part of an erasure (`Store::erase_user`): the keys under
//! the user's tag that only a SCAN finds (device cursors, the
//! private-message indexes of peers no longer in the list), then the
//! `erase_user` function (`lua/erase.lua`) over them and the fixed keys.

use bytes::Bytes;
use fred::prelude::Value;
use futures_util::TryStreamExt;
use herald_core::backend::ErasedStore;
use herald_core::{validate_user_id, CoreError, Result, StreamKey};

use super::RedisStore;
use crate::unavailable;

/// Keys per SCAN page: an erasure walks the keyspace in steps this size,
/// each one short for Redis.
const SCAN_COUNT: u32 = 1_000;

/// `s` with the glob characters of a SCAN pattern escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisStore {
    pub(super) async fn erase(&self, user: &str) -> Result<ErasedStore> {
        validate_user_id(user)?;
        let keys = &self.shared.keys;
        let inbox = StreamKey::inbox(user);
        // `P:{u:<user>}:` with the user escaped, as every key of theirs starts.
        let head = keys.marks(user);
        let head = &head[..head.len() - "marks".len()];
        let tag_start = head.find("{u:").unwrap_or(0);
        let pattern_head = format!(
            "{}{{u:{}}}:",
            glob_escape(&head[..tag_start]),
            glob_escape(user)
        );
        let cursors = self.scan(&format!("{pattern_head}cur:*")).await?;
        let private = self.scan(&format!("{pattern_head}pm:*")).await?;
        let mut script_keys = vec![
            keys.log(&inbox),
            keys.ids(&inbox),
            keys.exp(&inbox),
            keys.unread(user),
            keys.marks(user),
            keys.groups(user),
            keys.delivered(user),
            keys.peers(user),
        ];
        let n_cursors = cursors.len();
        script_keys.extend(cursors);
        script_keys.extend(private);
        let pm_prefix = keys.private_from(user, "");
        let reply: Vec<i64> = self
            .shared
            .scripts
            .erase_user
            .run(
                self.shared.pool.next(),
                script_keys,
                vec![
                    keys.channel(&inbox).into(),
                    if self.shared.sharded { "1" } else { "0" }.into(),
                    Value::Bytes(Bytes::from_static(crate::broker::ERASED)),
                    pm_prefix.into(),
                    Value::from(n_cursors as i64),
                ],
            )
            .await?;
        let [messages, conversations, cursors] = <[i64; 3]>::try_from(reply)
            .map_err(|_| CoreError::Unavailable("redis: erase_user: unexpected reply".into()))?;
        Ok(ErasedStore {
            messages: messages.max(0) as u64,
            conversations: conversations.max(0) as u64,
            cursors: cursors.max(0) as u64,
        })
    }

    /// Every key matching `pattern` (which names the user's tag: on a
    /// Cluster fred sends the SCAN to the node owning that slot).
    async fn scan(&self, pattern: &str) -> Result<Vec<String>> {
        let found: Vec<fred::types::Key> = self
            .shared
            .pool
            .next()
            .scan_buffered(pattern, Some(SCAN_COUNT), None)
            .try_collect()
            .await
            .map_err(unavailable)?;
        Ok(found.into_iter().filter_map(|k| k.into_string()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\d"), "a\\*b\\?\\[c\\]\\\\d");
        assert_eq!(glob_escape("plain-user_1"), "plain-user_1");
    }
}
