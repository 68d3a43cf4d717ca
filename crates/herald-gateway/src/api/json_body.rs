//! The JSON body of the send routes, parsed with serde_json directly.
//!
//! axum's `Json` runs every body through serde_path_to_error, which tracks
//! the path of each field so that an error can name it; on the send routes
//! that tracking cost a share of every message (docs/benchmarks.md, "Cost
//! per message"). Here a body is parsed plainly first, and only a body that
//! fails is handed to `Json`, so an error keeps axum's wording and path.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::Json;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A request body of `Content-Type: application/json` read as `T`; any
/// other request goes through axum's `Json`, errors included.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !plain_json(&req) {
            // Whatever axum says about this content type, it says here too.
            let Json(value) = Json::<T>::from_request(req, state)
                .await
                .map_err(ApiError::from_json_rejection)?;
            return Ok(JsonBody(value));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::from_json_rejection(JsonRejection::from(e)))?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(JsonBody(value)),
            Err(_) => {
                let Json(value) =
                    Json::<T>::from_bytes(&bytes).map_err(ApiError::from_json_rejection)?;
                Ok(JsonBody(value))
            }
        }
    }
}

/// `application/json`, with parameters or not: a content type axum's
/// `Json` takes too. (It takes more, such as `+json` suffixes; those go
/// its way.)
fn plain_json(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}
