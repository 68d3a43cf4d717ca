//! Presence for a backend: a user's live connections, and how many users
//! are online cluster-wide.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;

use crate::error::ApiError;
use crate::node::Node;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PresenceView {
    user_id: String,
    online: bool,
    connections: Vec<herald_core::ConnInfo>,
}

/// `GET /v1/users/{id}/presence`
#[utoipa::path(
    get,
    path = "/users/{id}/presence",
    tag = "users",
    summary = "A user's live connections",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "The user's connections on every node", body = PresenceView)),
    security(("api_key" = ["users"])),
)]
pub async fn user_presence(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
) -> Result<Json<PresenceView>, ApiError> {
    herald_core::validate_user_id(&user)?;
    let connections = node.presence.connections(&user).await?;
    Ok(Json(PresenceView {
        online: !connections.is_empty(),
        user_id: user,
        connections,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OnlineView {
    online_users: u64,
}

/// `GET /v1/presence`: how many users are online cluster-wide.
#[utoipa::path(
    get,
    path = "/presence",
    tag = "users",
    summary = "How many users are online",
    responses((status = 200, description = "Users with at least one connection, cluster-wide", body = OnlineView)),
    security(("api_key" = ["users"])),
)]
pub async fn online(State(node): State<Arc<Node>>) -> Result<Json<OnlineView>, ApiError> {
    Ok(Json(OnlineView {
        online_users: node.presence.online_users().await?,
    }))
}
