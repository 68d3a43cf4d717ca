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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    before: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct ConversationsView {
    conversations: Vec<ConversationSummary>,
    next: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ConversationView {
    messages: Vec<HistoryEntry>,
    next: Option<String>,
}

/// `GET /v1/users/{id}/conversations?before=&limit=`: the most recently
/// active first, each with its newest message and unread number.
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
