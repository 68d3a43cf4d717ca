//! A user's inbox for a backend: messages by seq, marks, action buttons,
//! counts and history — what the WebSocket's `sync`, `mark`, `act`,
//! `counts` and `history` do for a client.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use herald_core::{HistoryQuery, Selector, StreamKey, TagFilter};
use herald_protocol::{HistoryEntry, MarkSelector, MarkState, Message, StateFilter, UpTo};
use serde::{Deserialize, Serialize};

use super::json_body::JsonBody;
use crate::error::{ApiError, ErrorResponse};
use crate::node::Node;

/// Most messages one inbox read returns.
const MAX_PAGE: usize = 1_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Messages with a seq above this one (default 0: from the start).
    #[serde(default)]
    after: u64,
    /// 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboxView {
    user_id: String,
    last_seq: u64,
    messages: Vec<Message>,
}

/// `GET /v1/users/{id}/inbox?after=N&limit=M`
#[utoipa::path(
    get,
    path = "/users/{id}/inbox",
    tag = "inbox",
    summary = "A user's inbox by seq",
    params(("id" = String, Path, description = "The user id"), InboxQuery),
    responses((status = 200, description = "The messages after `after`, oldest first", body = InboxView)),
    security(("api_key" = ["users"])),
)]
pub async fn inbox(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    query: Result<Query<InboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InboxView>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    herald_core::validate_user_id(&user)?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let key = StreamKey::inbox(user.clone());
    let last_seq = node.store.last_seq(&key).await?;
    let messages = node.store.read_after(&key, query.after, limit).await?;
    Ok(Json(InboxView {
        user_id: user,
        last_seq,
        messages,
    }))
}

/// A mark: `state` and exactly one selector (`ids`, `up_to`,
/// `category`, `all` or `peer`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRequest {
    state: MarkState,
    #[serde(default)]
    ids: Option<Vec<uuid::Uuid>>,
    #[serde(default)]
    up_to: Option<UpTo>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    all: Option<bool>,
    #[serde(default)]
    peer: Option<String>,
    /// With state `snoozed`: when the messages come back, unix ms.
    #[serde(default)]
    until: Option<i64>,
    /// Only the selected messages with any of these tags.
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Only the selected messages of this severity.
    #[serde(default)]
    severity: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MarkResponse {
    /// How many messages really changed state.
    changed: u64,
}

/// `POST /v1/users/{id}/mark`: as the WebSocket `mark`, for a backend.
#[utoipa::path(
    post,
    path = "/users/{id}/mark",
    tag = "inbox",
    summary = "Change the read state of messages",
    params(("id" = String, Path, description = "The user id")),
    request_body(content = MarkRequest, example = json!({"state": "read", "category": "remind"})),
    responses((status = 200, description = "Marked", body = MarkResponse)),
    security(("api_key" = ["users"])),
)]
pub async fn mark(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    body: Result<Json<MarkRequest>, JsonRejection>,
) -> Result<Json<MarkResponse>, ApiError> {
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let until = request.until;
    let filter = TagFilter::check(request.tags.clone(), request.severity.as_deref())?;
    let (state, selector) = request.check(node.inbox.categories())?;
    let changed = node
        .inbox
        .mark_where(&user, state, &selector, until, &filter)
        .await?;
    Ok(Json(MarkResponse { changed }))
}

impl MarkRequest {
    /// The state and the one selector, checked.
    pub fn check(
        self,
        categories: &herald_core::Categories,
    ) -> Result<(MarkState, Selector), ApiError> {
        let wire = MarkSelector {
            ids: self.ids,
            up_to: self.up_to,
            category: self.category,
            all: self.all,
            peer: self.peer,
        };
        Ok((self.state, Selector::from_wire(wire, categories)?))
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActRequest {
    /// The message's id.
    message: uuid::Uuid,
    /// The id of one of its action buttons.
    action: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActResponse {
    message: uuid::Uuid,
    acted: String,
}

/// `POST /v1/users/{id}/act`: as the WebSocket `act`, for a backend: 200
/// `{message, acted}`; 409 `already_acted` when an act came first.
#[utoipa::path(
    post,
    path = "/users/{id}/act",
    tag = "inbox",
    summary = "Press an action button of a message",
    params(("id" = String, Path, description = "The user id")),
    request_body(content = ActRequest, example = json!({"message": "0190b6e4-6d2a-7c1e-9a4b-3f2d1c0b9a88", "action": "approve"})),
    responses(
        (status = 200, description = "Acted: the message is read and every tab of the user gets a `changed` frame", body = ActResponse),
        (status = 404, description = "`not_found`: no such message in the user's inbox, or no such action on it", body = ErrorResponse),
        (status = 409, description = "`already_acted`: an act on this message came first", body = ErrorResponse),
    ),
    security(("api_key" = ["users"])),
)]
pub async fn act(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    JsonBody(request): JsonBody<ActRequest>,
) -> Result<Json<ActResponse>, ApiError> {
    let acted = node
        .inbox
        .act(&user, request.message, &request.action)
        .await;
    node.metrics.act(&acted);
    let acted = acted?;
    Ok(Json(ActResponse {
        message: acted.message,
        acted: acted.action,
    }))
}

/// `?tags=a,b&severity=high`: the filter of history and of counts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CountsParams {
    /// `a,b`: only messages with any of these tags.
    tags: Option<String>,
    /// Only messages of this severity: `low`, `normal`, `high` or `critical`.
    severity: Option<String>,
}

/// With a filter, the `counts` request's answer: its unread messages.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FilteredCounts {
    unread: u64,
}

/// What `GET /v1/users/{id}/counts` answers: every number without a
/// filter, the filter's unread number with one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CountsView {
    All(herald_protocol::Counts),
    Filtered(FilteredCounts),
}

/// `GET /v1/users/{id}/counts`: the same object as the `counts` frame;
/// with `?tags=a,b` and/or `?severity=`, `{"unread": n}` of that filter
/// (the `counts` request's answer).
#[utoipa::path(
    get,
    path = "/users/{id}/counts",
    tag = "inbox",
    summary = "A user's unread numbers",
    params(("id" = String, Path, description = "The user id"), CountsParams),
    responses((status = 200, description = "The `counts` frame's object, or `{\"unread\": n}` with a filter", body = CountsView)),
    security(("api_key" = ["users"])),
)]
pub async fn counts(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    query: Result<Query<CountsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CountsView>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if params.tags.is_none() && params.severity.is_none() {
        return Ok(Json(CountsView::All(
            node.inbox.counts(&user).await?.counts(),
        )));
    }
    let filter = TagFilter::from_query(params.tags.as_deref(), params.severity.as_deref())?;
    let unread = node.inbox.unread_matching(&user, &filter).await?;
    Ok(Json(CountsView::Filtered(FilteredCounts { unread })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Only this category.
    category: Option<String>,
    /// Default: everything not archived.
    state: Option<StateFilter>,
    /// The `next` cursor of the page before.
    before: Option<String>,
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
    /// `true`: the snoozed messages only.
    snoozed: Option<bool>,
    /// `a,b`: messages with any of these tags.
    tags: Option<String>,
    severity: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryView {
    messages: Vec<HistoryEntry>,
    next: Option<String>,
}

/// `GET /v1/users/{id}/messages?category=&state=&before=&limit=`: history
/// as the WebSocket `history` gives it.
#[utoipa::path(
    get,
    path = "/users/{id}/messages",
    tag = "inbox",
    summary = "A page of a user's history",
    params(("id" = String, Path, description = "The user id"), HistoryParams),
    responses((status = 200, description = "Newest first; `next` is the cursor of the next (older) page, `null` at the end", body = HistoryView)),
    security(("api_key" = ["users"])),
)]
pub async fn history(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    query: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryView>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = TagFilter::from_query(params.tags.as_deref(), params.severity.as_deref())?;
    let page = node
        .inbox
        .history(
            &user,
            HistoryQuery {
                category: params.category,
                state: params.state,
                before: params.before,
                limit: params.limit,
                snoozed: params.snoozed.unwrap_or(false),
                filter,
            },
        )
        .await?;
    Ok(Json(HistoryView {
        messages: page.messages,
        next: page.next,
    }))
}
