//! A user's private conversations, for backends: the same pages the
//! WebSocket `conversations` and `conversation` requests answer.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use herald_protocol::{ConversationSummary, HistoryEntry};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::node::Node;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// The `next` cursor of the page before.
    before: Option<String>,
    /// Page size (default 20 conversations, 50 messages; at most 100 and
    /// 200).
    #[param(minimum = 1)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationsView {
    conversations: Vec<ConversationSummary>,
    next: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    messages: Vec<HistoryEntry>,
    next: Option<String>,
}

/// `GET /v1/users/{id}/conversations?before=&limit=`: the most recently
/// active first, each with its newest message and unread number.
#[utoipa::path(
    get,
    path = "/users/{id}/conversations",
    tag = "conversations",
    summary = "A user's conversations",
    params(("id" = String, Path, description = "The user id"), PageParams),
    responses((status = 200, description = "The most recently active first; `next` is `null` at the end", body = ConversationsView)),
    security(("api_key" = ["users"])),
)]
pub async fn conversations(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<ConversationsView>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let page = node
        .conversations
        .list(&user, params.before.as_deref(), params.limit)
        .await?;
    Ok(Json(ConversationsView {
        conversations: page.conversations,
        next: page.next,
    }))
}

/// `GET /v1/users/{id}/conversations/{peer}?before=&limit=`: both
/// directions, newest first; messages the user sent carry `receipt`.
#[utoipa::path(
    get,
    path = "/users/{id}/conversations/{peer}",
    tag = "conversations",
    summary = "A page of one conversation",
    params(("id" = String, Path, description = "The user id"), ("peer" = String, Path, description = "The other user"), PageParams),
    responses((status = 200, description = "Both directions, newest first", body = ConversationView)),
    security(("api_key" = ["users"])),
)]
pub async fn conversation(
    State(node): State<Arc<Node>>,
    Path((user, peer)): Path<(String, String)>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<ConversationView>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let page = node
        .conversations
        .page(&user, &peer, params.before.as_deref(), params.limit)
        .await?;
    Ok(Json(ConversationView {
        messages: page.messages,
        next: page.next,
    }))
}
