//! Each user's preferences as a backend keeps them: only what the user set,
//! as flat fields (the operator's defaults are filled in by
//! [`UserPreferences`](crate::UserPreferences), never stored, so a changed
//! default reaches every user who did not set that category).

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::Result;

/// Most topics one user may hold preferences for (a `PATCH` past it is a
/// 400, nothing written).
pub const MAX_TOPIC_PREFERENCES: usize = 1_000;

/// What a user set, field by field (the layout is `preference_fields`'s, in
/// core's `preferences.rs`): `ci:<category>` / `cf:<category>` the category's
/// `in_app` / `fallback` (`"1"` or `"0"`), `t:<topic>` present for each topic
/// the user set, with `ti:<topic>` / `tf:<topic>`, and `q` the quiet hours as
/// JSON.
pub type StoredPreferences = BTreeMap<String, String>;

/// One atomic change of a user's stored preferences: fields to set, fields
/// to remove (removals first), and the topic limit the result must keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreferenceChange {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
}

/// Each user's preferences.
#[async_trait]
pub trait PreferenceStore: Send + Sync + 'static {
    /// What `user` set (empty: nothing, all defaults).
    async fn load(&self, user: &str) -> Result<StoredPreferences>;

    /// Applies `change` to `user`'s fields atomically, unless the result
    /// would hold more than [`MAX_TOPIC_PREFERENCES`] topics (`invalid`,
    /// nothing written); in the same step publishes the result on the
    /// user's channel (every node's `BrokerSink::preferences`), and returns
    /// it.
    async fn apply(&self, user: &str, change: &PreferenceChange) -> Result<StoredPreferences>;
}
