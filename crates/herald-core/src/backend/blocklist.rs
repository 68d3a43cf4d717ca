//! Who each user blocked: a blocked user's private messages to them are
//! refused (error `blocked`), and the blocked user learns nothing else.

use async_trait::async_trait;

use crate::error::Result;

/// Most users one user may block.
pub const MAX_BLOCKED_PER_USER: usize = 10_000;

/// Each user's blocked users.
#[async_trait]
pub trait Blocklist: Send + Sync + 'static {
    /// `user` blocks `blocked`; true if it was not blocked before.
    async fn block(&self, user: &str, blocked: &str) -> Result<bool>;
    /// true if it was blocked.
    async fn unblock(&self, user: &str, blocked: &str) -> Result<bool>;
    /// The users `user` blocked, sorted.
    async fn blocked_by(&self, user: &str) -> Result<Vec<String>>;
    /// Whether `user` blocked `sender`.
    async fn is_blocked(&self, user: &str, sender: &str) -> Result<bool>;
}
