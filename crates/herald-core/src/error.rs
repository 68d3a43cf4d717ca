use thiserror::Error;

/// Errors of the backend traits. Callers map `Unavailable` to "try again"
/// (HTTP 503, an `unavailable` reply) and `Invalid` to a client error.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum CoreError {
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
