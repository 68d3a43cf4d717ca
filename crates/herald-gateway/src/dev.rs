//! Dev mode (`dev.enabled`, which `make run` sets): the demo inbox and the
//! browser SDK as static files, tokens for any user, and sends without the
//! API key for the demo's admin panel, and a reference of the server API
//! (`/dev/api`). None of it exists otherwise.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::Html;
use axum::routing::{get, get_service, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::services::{ServeDir, ServeFile};

use crate::api;
use crate::error::ApiError;
use crate::node::Node;
use crate::settings::DevSettings;

/// The dev routes; empty unless `dev.enabled`.
pub fn router(dev: &DevSettings) -> Router<Arc<Node>> {
    if !dev.enabled {
        return Router::new();
    }
    tracing::warn!("dev mode: /dev/token mints tokens for anyone; never enable it in production");
    let index = format!("{}/index.html", dev.demo_dir);
    Router::new()
        .route("/dev/token", post(token))
        .route("/dev/messages", post(api::messages::post_messages))
        .route("/dev/api", get(reference))
        .route("/", get_service(ServeFile::new(index)))
        .nest_service("/demo", ServeDir::new(&dev.demo_dir))
        .nest_service("/sdk", ServeDir::new(&dev.sdk_dir))
}

/// The reference page: a small page of ours that reads `/openapi.json`
/// and lists every operation. Built into the binary and loading nothing
/// from elsewhere (no CDN, no Swagger UI download), so it works offline.
const REFERENCE: &str = include_str!("dev/reference.html");

/// `GET /dev/api`: the server API's reference.
async fn reference() -> Html<&'static str> {
    Html(REFERENCE)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    user: String,
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    token: String,
}

/// `POST /dev/token {"user":"alice"}` → a token for alice.
async fn token(
    State(node): State<Arc<Node>>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    herald_core::validate_user_id(&request.user)
        .map_err(|e| ApiError::invalid(format!("user: {e}")))?;
    let token = node
        .auth()
        .mint(&request.user, node.settings.dev.token_ttl_secs)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(Json(TokenResponse { token }))
}
