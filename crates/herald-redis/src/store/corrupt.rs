//! The error of what the store reads back and cannot parse. Its own file
//! because the store and the parsers beside it (`read_state.rs`,
//! `expiry.rs`) all answer it, and the store imports them.

use herald_core::CoreError;

/// The error of a stored value the store's scripts could not have written.
pub(super) fn corrupt(what: &str) -> CoreError {
    CoreError::Unavailable(format!("redis: corrupt {what}"))
}
