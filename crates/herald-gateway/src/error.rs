//! HTTP errors as JSON bodies: `{"error":{"code":"..","message":".."}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::CoreError;
use herald_protocol::{ErrorBody, ErrorCode};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, message)
    }

    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            message,
        )
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadRequest,
            message,
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Unauthorized, message)
    }

    /// A body that is not the JSON wanted: 400, or 413 when it is over the
    /// request size limit (2 MB).
    pub fn from_json_rejection(e: axum::extract::rejection::JsonRejection) -> Self {
        let status = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, ErrorCode::BadRequest, e.body_text())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// The same error with its message prefixed, e.g. by where it was found.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.message.insert_str(0, prefix);
        self
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            message,
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::Unavailable(m) => ApiError::unavailable(m),
            CoreError::Invalid(m) => ApiError::invalid(m),
            CoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, m),
            CoreError::Blocked(m) | CoreError::Skipped(m) => {
                ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Blocked, m)
            }
            CoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, m),
            CoreError::AlreadyActed(m) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::AlreadyActed, m)
            }
        }
    }
}

/// The body of every HTTP error: `{"error":{"code","message"}}`. Named
/// `ErrorResponse` in the OpenAPI document.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

impl IntoResponse for ApiError {
    /// Also the one log line of every API error (warn for 5xx).
    fn into_response(self) -> Response {
        let status = self.status.as_u16();
        if self.status.is_server_error() {
            tracing::warn!(status, code = ?self.code, message = %self.message, "api error");
        } else {
            tracing::info!(status, code = ?self.code, message = %self.message, "api error");
        }
        let error = ErrorBody {
            code: self.code,
            message: self.message,
        };
        (self.status, Json(ErrorResponse { error })).into_response()
    }
}
