use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::backend::{PreferenceChange, PreferenceStore, StoredPreferences};
use crate::error::Result;
use crate::memory::MemoryBus;
use crate::model::validate_user_id;
use crate::preferences::apply_preference_change;

/// What each user set of their preferences, in one process; a change is
/// told to the bus's listeners of the user under the lock, so pushes come
/// in the order of the changes.
pub struct MemoryPreferences {
    bus: Arc<MemoryBus>,
    users: Mutex<HashMap<String, StoredPreferences>>,
}

impl MemoryPreferences {
    pub fn new(bus: Arc<MemoryBus>) -> Self {
        MemoryPreferences {
            bus,
            users: Mutex::default(),
        }
    }

    /// What `user` set, for the store's append (which holds its own lock
    /// and does not await).
    pub(crate) fn stored(&self, user: &str) -> Option<StoredPreferences> {
        self.users.lock().unwrap().get(user).cloned()
    }
}

#[async_trait]
impl PreferenceStore for MemoryPreferences {
    async fn load(&self, user: &str) -> Result<StoredPreferences> {
        validate_user_id(user)?;
        Ok(self.stored(user).unwrap_or_default())
    }

    async fn apply(&self, user: &str, change: &PreferenceChange) -> Result<StoredPreferences> {
        validate_user_id(user)?;
        let mut users = self.users.lock().unwrap();
        let mut fields = users.get(user).cloned().unwrap_or_default();
        apply_preference_change(&mut fields, change)?;
        if fields.is_empty() {
            users.remove(user);
        } else {
            users.insert(user.to_owned(), fields.clone());
        }
        self.bus.publish_preferences(user, &fields);
        Ok(fields)
    }
}
