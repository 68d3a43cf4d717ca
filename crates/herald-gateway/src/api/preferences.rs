//! `GET` and `PATCH /v1/users/{id}/preferences`: for a backend with an API
//! key of the `users` scope, or for the user themselves with their own
//! token (a settings page calling Herald directly). Another user's token,
//! or a key without that scope, is 403.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use herald_protocol::{Preferences, PreferencesPatch};

use crate::api_keys::Scope;
use crate::error::{ApiError, ErrorResponse};
use crate::node::Node;

/// Largest `PATCH` body (413 past it): a full patch of the most topics
/// (`MAX_TOPIC_PREFERENCES`) with long names fits.
pub const MAX_PREFERENCES_BODY: usize = 64 * 1024;

/// `GET /v1/users/{id}/preferences`: all of them, defaults filled in.
#[utoipa::path(
    get,
    path = "/users/{id}/preferences",
    tag = "preferences",
    summary = "A user's preferences",
    params(("id" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "Every category (defaults filled in), the topics the user set, the quiet hours", body = Preferences),
        (status = 403, description = "`unauthorized`: a key without the `users` scope, or another user's token", body = ErrorResponse),
    ),
    security(("api_key" = ["users"]), ("user_token" = []), ("user_cookie" = [])),
)]
pub async fn get_preferences(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Preferences>, ApiError> {
    authorize(&node, &headers, &user).await?;
    Ok(Json(node.preferences.get(&user).await?))
}

/// `PATCH /v1/users/{id}/preferences`: merges the partial object given,
/// answers all of them; every connection of the user gets them too.
#[utoipa::path(
    patch,
    path = "/users/{id}/preferences",
    tag = "preferences",
    summary = "Change some of a user's preferences",
    params(("id" = String, Path, description = "The user id")),
    request_body(content = PreferencesPatch, example = json!({
        "categories": {"remind": {"fallback": false}},
        "topics": {"article:42": {"in_app": false}},
        "quiet_hours": {"tz": "Europe/Paris", "start": "22:00", "end": "07:00"}
    })),
    responses(
        (status = 200, description = "All of them, after the change", body = Preferences),
        (status = 403, description = "`unauthorized`: a key without the `users` scope, or another user's token", body = ErrorResponse),
        (status = 413, description = "`bad_request`: a body over 64 KiB", body = ErrorResponse),
    ),
    security(("api_key" = ["users"]), ("user_token" = []), ("user_cookie" = [])),
)]
pub async fn patch_preferences(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Preferences>, ApiError> {
    authorize(&node, &headers, &user).await?;
    if body.len() > MAX_PREFERENCES_BODY {
        return Err(ApiError::too_large(format!(
            "a preferences body is at most {MAX_PREFERENCES_BODY} bytes"
        )));
    }
    let patch: PreferencesPatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("preferences: {e}")))?;
    Ok(Json(node.preferences.update(&user, &patch).await?))
}

/// An API key with the `users` scope, or `user`'s own token (or session).
async fn authorize(node: &Node, headers: &HeaderMap, user: &str) -> Result<(), ApiError> {
    let by_key = node.api_keys().load().authorize(headers, Scope::Users);
    match by_key {
        Ok(_) => return Ok(()),
        // A key, but without the scope.
        Err(e) if e.status == axum::http::StatusCode::FORBIDDEN => return Err(e),
        Err(_) => {}
    }
    let caller = node.auth().handshake(headers, None).await?;
    if caller != user {
        return Err(ApiError::forbidden(
            "a user's token reaches only that user's preferences",
        ));
    }
    Ok(())
}
