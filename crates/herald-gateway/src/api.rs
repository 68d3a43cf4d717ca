//! The server API for application backends: send messages, read presence
//! and inboxes. JSON in and out, `Authorization: Bearer <api key>`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use herald_core::{
    HistoryQuery, NewMessage, Outgoing, Selector, Sender, Sent, StreamKey, TagFilter,
};
use herald_protocol::{HistoryEntry, MarkSelector, MarkState, Message, StateFilter, UpTo};
use serde::{Deserialize, Serialize};

// Public so that `utoipa_axum::routes!` in `app.rs` finds each handler's
// generated `__path_*` item beside it.
pub mod conversations;
pub mod fanout;
mod json_body;
pub mod preferences;
pub mod scheduled;
pub mod user_data;
pub mod webhooks;

pub use preferences::MAX_PREFERENCES_BODY;
pub use scheduled::SendView;
pub use user_data::ErasedView;

use crate::error::{ApiError, ErrorResponse};
use crate::node::Node;
use json_body::JsonBody;

/// Most messages in one `POST /v1/messages/batch`.
pub const MAX_BATCH_MESSAGES: usize = 1_000;
/// Most inbox appends one batch may cause (messages × their users).
const MAX_BATCH_APPENDS: usize = 10_000;
/// The idempotency scope of server API sends (there is one API key).
const API_SCOPE: &str = "api";
/// Most messages one inbox read returns.
const MAX_PAGE: usize = 1_000;

/// Exactly one of `users` (each receiver's inbox) or `all: true` (the
/// shared `all` stream, category `announcement` only).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    #[serde(default)]
    users: Option<Vec<String>>,
    #[serde(default)]
    all: Option<bool>,
}

/// A message of `POST /v1/messages` or of a batch. An unknown field is
/// refused (400 naming it): a field this version does not know, such as a
/// newer contract's scheduling or collapse, must never be dropped silently
/// and the message delivered as if it were not there.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    to: Recipients,
    category: String,
    #[serde(default)]
    title: Option<String>,
    body: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    /// Optional sender shown to the receiver (a user id or a system name).
    #[serde(default)]
    from: Option<String>,
    /// A retry with the same key gets the first outcome.
    #[serde(default)]
    idempotency_key: Option<String>,
    /// RFC 3339; after it the message is not pushed, listed or counted.
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<time::OffsetDateTime>,
    /// Nobody may mute it: stored whatever the receivers' preferences,
    /// never silent.
    #[serde(default)]
    critical: bool,
    /// Unix ms: store and push it then, not now (a scheduled send).
    #[serde(default)]
    deliver_at: Option<i64>,
    /// Collapse group: replaces each receiver's unread message with the
    /// same key (1–128 characters).
    #[serde(default)]
    group_key: Option<String>,
    /// Seconds after which a receiver's unread copy raises the fallback
    /// webhook (overrides the category's `fallback_after_secs`).
    #[serde(default)]
    fallback_after_secs: Option<u64>,
    /// Action buttons: at most 3, ids unique, labels of at most 64
    /// characters, urls http(s) only.
    #[serde(default)]
    actions: Vec<herald_protocol::Action>,
    /// Labels: ≤ 10, each ≤ 64 bytes of `[a-z0-9:_.-]`.
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// `low`, `normal` (the default), `high` or `critical`.
    #[serde(default)]
    severity: Option<String>,
}

impl SendRequest {
    /// Checks the request with the one validator every transport uses.
    pub fn prepare(self, sender: &Sender) -> Result<Outgoing, ApiError> {
        let users = match (self.to.users, self.to.all) {
            (Some(users), None) => Some(users),
            (None, Some(true)) => None,
            _ => {
                return Err(ApiError::invalid(
                    r#"to must be {"users":[...]} or {"all":true}"#,
                ))
            }
        };
        let message = NewMessage {
            category: self.category,
            from: self.from,
            title: self.title,
            body: self.body,
            data: self.data,
            expires_at: self.expires_at,
            group_key: self.group_key,
            critical: self.critical,
            fallback_after_secs: self.fallback_after_secs,
            actions: self.actions,
            tags: self.tags,
            severity: self.severity,
        };
        Ok(sender.prepare_at(users, message, self.idempotency_key, self.deliver_at)?)
    }
}

/// `POST /v1/messages`: stores the message in each receiver's inbox (or once
/// in the `all` stream) and answers 202 once stored. Live push happens after.
/// With `deliver_at`, schedules it instead: 202 `{scheduled, deliver_at}`.
#[utoipa::path(
    post,
    path = "/messages",
    tag = "messages",
    summary = "Send a message",
    request_body(content = SendRequest, example = json!({
        "to": {"users": ["alice", "bob"]},
        "category": "remind",
        "title": "Build finished",
        "body": "main is green",
        "data": {"url": "/builds/42"},
        "idempotency_key": "build-42",
        "tags": ["ci"],
        "severity": "high"
    })),
    responses(
        (status = 202, description = "Stored in every receiver's inbox (live push follows), or scheduled with `deliver_at`", body = SendView),
        (status = 409, description = "`conflict`: the idempotency key was used for another request", body = ErrorResponse),
    ),
    security(("api_key" = ["send"])),
)]
pub async fn post_messages(
    State(node): State<Arc<Node>>,
    JsonBody(request): JsonBody<SendRequest>,
) -> Result<(StatusCode, Json<SendView>), ApiError> {
    let outgoing = request.prepare(&node.sender)?;
    let mut sent = send(&node, "api", vec![outgoing]).await?;
    Ok((StatusCode::ACCEPTED, Json(SendView::from(sent.remove(0)))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 1,000 messages, each as `POST /v1/messages` takes it.
    messages: Vec<SendRequest>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// One entry per message, in request order.
    pub results: Vec<SendView>,
}

/// `POST /v1/messages/batch`: many messages in one request, each as
/// `POST /v1/messages` would take it (a backend sending distinct
/// notifications to many users saves a round trip per message). The batch is
/// validated as a whole first: one bad message is a 400 naming its index
/// and nothing is stored. Messages to the same user keep the batch's order.
#[utoipa::path(
    post,
    path = "/messages/batch",
    tag = "messages",
    summary = "Send many messages",
    request_body(content = BatchRequest, example = json!({"messages": [
        {"to": {"users": ["alice"]}, "category": "system", "body": "Your export is ready"},
        {"to": {"users": ["bob"]}, "category": "remind", "body": "Meeting in 10 minutes"}
    ]})),
    responses(
        (status = 202, description = "Every message stored (or scheduled), one result each in request order", body = BatchResponse),
        (status = 409, description = "`conflict`: an idempotency key was used for another request", body = ErrorResponse),
    ),
    security(("api_key" = ["send"])),
)]
pub async fn post_batch(
    State(node): State<Arc<Node>>,
    JsonBody(request): JsonBody<BatchRequest>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let count = request.messages.len();
    if count == 0 || count > MAX_BATCH_MESSAGES {
        return Err(ApiError::invalid(format!(
            "messages must hold 1 to {MAX_BATCH_MESSAGES} messages"
        )));
    }
    let mut prepared = Vec::with_capacity(count);
    for (i, message) in request.messages.into_iter().enumerate() {
        let outgoing = message
            .prepare(&node.sender)
            .map_err(|e| e.with_prefix(&format!("messages[{i}]: ")))?;
        prepared.push(outgoing);
    }
    let appends: usize = prepared.iter().map(|o| o.target.appends()).sum();
    if appends > MAX_BATCH_APPENDS {
        return Err(ApiError::invalid(format!(
            "a batch may address at most {MAX_BATCH_APPENDS} inboxes in all, this one {appends}"
        )));
    }
    let results = send(&node, "batch", prepared).await?;
    let results = results.into_iter().map(SendView::from).collect();
    Ok((StatusCode::ACCEPTED, Json(BatchResponse { results })))
}

/// Sends through the core service and counts what was accepted, by entry
/// point (`api` or `batch`) and category. A retry answered from its
/// idempotency key counts again: it was accepted again.
///
/// A send with idempotency keys runs in a task of its own: if the HTTP
/// client goes away, the claim → store → record sequence of its keys still
/// finishes (a cancelled one would leave its key pending until the lease
/// ends). Without keys the request's own task sends: a client that goes away
/// leaves each append stored or not, as a retry without a key would.
async fn send(
    node: &Arc<Node>,
    entry: &str,
    messages: Vec<Outgoing>,
) -> Result<Vec<Sent>, ApiError> {
    let categories: Vec<_> = messages.iter().map(|m| m.draft.category.clone()).collect();
    let sent = if messages.iter().any(|m| m.idempotency.is_some()) {
        let sending = node.clone();
        tokio::spawn(async move { sending.sender.send(API_SCOPE, messages).await })
            .await
            .map_err(|e| ApiError::unavailable(format!("send task failed: {e}")))??
    } else {
        node.sender.send(API_SCOPE, messages).await?
    };
    for (message, category) in sent.iter().zip(&categories) {
        for _ in &message.stored {
            node.metrics.accepted(entry, category.as_str());
        }
        if message.deliver_at.is_some() {
            node.metrics.scheduled();
        }
    }
    Ok(sent)
}

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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    /// Whether this call changed anything (false: it was already so).
    changed: bool,
}

/// `PUT /v1/users/{id}/topics/{topic}`: subscribes the user.
#[utoipa::path(
    put,
    path = "/users/{id}/topics/{topic}",
    tag = "topics",
    summary = "Subscribe a user to a topic",
    params(("id" = String, Path, description = "The user id"), ("topic" = String, Path, description = "The topic (`article:42`; following a user is `user:<id>`)")),
    responses((status = 200, description = "Subscribed", body = SubscriptionView)),
    security(("api_key" = ["users"])),
)]
pub async fn subscribe(
    State(node): State<Arc<Node>>,
    Path((user, topic)): Path<(String, String)>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changed = node.topics.subscribe(&user, &topic).await?;
    Ok(Json(SubscriptionView { changed }))
}

/// `DELETE /v1/users/{id}/topics/{topic}`: unsubscribes the user.
#[utoipa::path(
    delete,
    path = "/users/{id}/topics/{topic}",
    tag = "topics",
    summary = "Unsubscribe a user from a topic",
    params(("id" = String, Path, description = "The user id"), ("topic" = String, Path, description = "The topic")),
    responses((status = 200, description = "Unsubscribed", body = SubscriptionView)),
    security(("api_key" = ["users"])),
)]
pub async fn unsubscribe(
    State(node): State<Arc<Node>>,
    Path((user, topic)): Path<(String, String)>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changed = node.topics.unsubscribe(&user, &topic).await?;
    Ok(Json(SubscriptionView { changed }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicsView {
    topics: Vec<String>,
}

/// `GET /v1/users/{id}/topics`: the user's topics, sorted.
#[utoipa::path(
    get,
    path = "/users/{id}/topics",
    tag = "topics",
    summary = "A user's topics",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "The user's topics, sorted", body = TopicsView)),
    security(("api_key" = ["users"])),
)]
pub async fn user_topics(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
) -> Result<Json<TopicsView>, ApiError> {
    Ok(Json(TopicsView {
        topics: node.topics.topics_of(&user).await?,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SubscribersQuery {
    /// The `next` of the page before.
    after: Option<String>,
    /// 1 to 10,000 (default 1,000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscribersView {
    topic: String,
    /// Subscribers in user-id byte order.
    subscribers: Vec<String>,
    /// Pass as `after` for the next page; `null` at the end.
    next: Option<String>,
    /// Subscribers in all.
    total: u64,
}

/// Most subscribers one page returns.
const MAX_SUBSCRIBERS_PAGE: usize = 10_000;

/// `GET /v1/topics/{topic}/subscribers?after=&limit=`: a page of the
/// topic's subscribers, for backends.
#[utoipa::path(
    get,
    path = "/topics/{topic}/subscribers",
    tag = "topics",
    summary = "A page of a topic's subscribers",
    params(("topic" = String, Path, description = "The topic"), SubscribersQuery),
    responses((status = 200, description = "Subscribers in user-id byte order", body = SubscribersView)),
    security(("api_key" = ["users"])),
)]
pub async fn topic_subscribers(
    State(node): State<Arc<Node>>,
    Path(topic): Path<String>,
    query: Result<Query<SubscribersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SubscribersView>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(1_000);
    if limit == 0 || limit > MAX_SUBSCRIBERS_PAGE {
        return Err(ApiError::invalid(format!(
            "limit: must be 1 to {MAX_SUBSCRIBERS_PAGE}"
        )));
    }
    let subscribers = node
        .topics
        .subscribers(&topic, query.after.as_deref(), limit)
        .await?;
    let total = node.topics.subscriber_count(&topic).await?;
    let next = (subscribers.len() == limit)
        .then(|| subscribers.last().cloned())
        .flatten();
    Ok(Json(SubscribersView {
        topic,
        subscribers,
        next,
        total,
    }))
}

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
