//! What a key may do. Its own file because the settings name it too
//! (`[[api.keys]] scopes`), and the keys are built from the settings.

use serde::{Deserialize, Serialize};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send messages, publish to topics, follow jobs.
    Send,
    /// Read and act on behalf of users: inboxes, marks, counts, history,
    /// conversations, topics, blocks, presence.
    Users,
    /// Everything.
    Admin,
}
