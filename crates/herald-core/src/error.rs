use thiserror::Error;

/// Errors of the backend traits and services. Callers map `Unavailable` to
/// "try again" (HTTP 503, an `unavailable` reply), `Invalid` to a client
/// error (400) and `Conflict` to 409.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum CoreError {
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
    /// An idempotency key reused for a different request (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The receiver blocked the sender (HTTP 403, reply code `blocked`).
    #[error("{0}")]
    Blocked(String),
    /// The receiver's preferences keep the message out (`in_app: false`
    /// for its category or topic): not stored for them. Not a failure of
    /// the send: the sender learns it per receiver (`skipped`).
    #[error("{0}")]
    Skipped(String),
    /// What the request names does not exist for this user (HTTP 404,
    /// reply code `not_found`): a message to act on.
    #[error("{0}")]
    NotFound(String),
    /// An act on a message acted on before: the first act wins (HTTP 409,
    /// reply code `already_acted`).
    #[error("{0}")]
    AlreadyActed(String),
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
