use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::backend::{Blocklist, MAX_BLOCKED_PER_USER};
use crate::blocklist::validate_block;
use crate::error::{CoreError, Result};

/// Blocked users per user, in one process.
#[derive(Default)]
pub struct MemoryBlocklist {
    blocked: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl MemoryBlocklist {
    /// Whether `user` blocked `sender`, for the store's append (which holds
    /// its own lock and does not await).
    pub(crate) fn blocks(&self, user: &str, sender: &str) -> bool {
        let all = self.blocked.lock().unwrap();
        all.get(user).is_some_and(|s| s.contains(sender))
    }
}

#[async_trait]
impl Blocklist for MemoryBlocklist {
    async fn block(&self, user: &str, blocked: &str) -> Result<bool> {
        validate_block(user, blocked)?;
        let mut all = self.blocked.lock().unwrap();
        let set = all.entry(user.to_owned()).or_default();
        if set.contains(blocked) {
            return Ok(false);
        }
        if set.len() >= MAX_BLOCKED_PER_USER {
            return Err(CoreError::Invalid(format!(
                "user: at most {MAX_BLOCKED_PER_USER} users may be blocked"
            )));
        }
        Ok(set.insert(blocked.to_owned()))
    }

    async fn unblock(&self, user: &str, blocked: &str) -> Result<bool> {
        validate_block(user, blocked)?;
        let mut all = self.blocked.lock().unwrap();
        let removed = all.get_mut(user).is_some_and(|s| s.remove(blocked));
        if all.get(user).is_some_and(|s| s.is_empty()) {
            all.remove(user);
        }
        Ok(removed)
    }

    async fn blocked_by(&self, user: &str) -> Result<Vec<String>> {
        crate::validate_user_id(user)?;
        let all = self.blocked.lock().unwrap();
        Ok(all
            .get(user)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn is_blocked(&self, user: &str, sender: &str) -> Result<bool> {
        Ok(self.blocks(user, sender))
    }
}
