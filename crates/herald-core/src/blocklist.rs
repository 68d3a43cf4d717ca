//! The check every block request passes, on every backend (the trait is
//! [`Blocklist`](crate::Blocklist)).

use crate::error::{CoreError, Result};
use crate::model::validate_user_id;

/// Checks a block request: valid ids, and nobody blocks themselves (every
/// backend's `block`/`unblock` starts with this).
pub fn validate_block(user: &str, blocked: &str) -> Result<()> {
    validate_user_id(user)?;
    validate_user_id(blocked).map_err(|e| CoreError::Invalid(format!("user: {e}")))?;
    if user == blocked {
        return Err(CoreError::Invalid("user: one cannot block oneself".into()));
    }
    Ok(())
}
