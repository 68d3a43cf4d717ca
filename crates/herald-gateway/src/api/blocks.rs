//! Block lists: whom a user refuses private messages from.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;

use super::topics::SubscriptionView;
use crate::error::ApiError;
use crate::node::Node;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlocksView {
    blocked: Vec<String>,
}

/// `PUT /v1/users/{id}/blocks/{user}`: `id` refuses private messages from
/// `user` from now on.
#[utoipa::path(
    put,
    path = "/users/{id}/blocks/{user}",
    tag = "users",
    summary = "Block a user's private messages",
    params(("id" = String, Path, description = "The user who blocks"), ("user" = String, Path, description = "The user blocked")),
    responses((status = 200, description = "Blocked", body = SubscriptionView)),
    security(("api_key" = ["users"])),
)]
pub async fn block(
    State(node): State<Arc<Node>>,
    Path((user, blocked)): Path<(String, String)>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changed = node.blocklist.block(&user, &blocked).await?;
    Ok(Json(SubscriptionView { changed }))
}

/// `DELETE /v1/users/{id}/blocks/{user}`.
#[utoipa::path(
    delete,
    path = "/users/{id}/blocks/{user}",
    tag = "users",
    summary = "Unblock a user",
    params(("id" = String, Path, description = "The user who blocked"), ("user" = String, Path, description = "The user blocked")),
    responses((status = 200, description = "Unblocked", body = SubscriptionView)),
    security(("api_key" = ["users"])),
)]
pub async fn unblock(
    State(node): State<Arc<Node>>,
    Path((user, blocked)): Path<(String, String)>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changed = node.blocklist.unblock(&user, &blocked).await?;
    Ok(Json(SubscriptionView { changed }))
}

/// `GET /v1/users/{id}/blocks`: whom the user blocked, sorted.
#[utoipa::path(
    get,
    path = "/users/{id}/blocks",
    tag = "users",
    summary = "Whom a user blocked",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "Sorted", body = BlocksView)),
    security(("api_key" = ["users"])),
)]
pub async fn blocks(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
) -> Result<Json<BlocksView>, ApiError> {
    Ok(Json(BlocksView {
        blocked: node.blocklist.blocked_by(&user).await?,
    }))
}
