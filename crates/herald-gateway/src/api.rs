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

mod conversations;
mod fanout;
mod json_body;
mod preferences;
mod scheduled;
mod user_data;
mod webhooks;

pub use conversations::{conversation, conversations};
pub use fanout::{job, publish};
pub use preferences::{get_preferences, patch_preferences, MAX_PREFERENCES_BODY};
pub use scheduled::{cancel_scheduled, scheduled, SendView};
pub use user_data::{erase_user, export_user, ErasedView};
pub use webhooks::{dead as dead_webhooks, retry_dead as retry_dead_webhook};

use crate::error::ApiError;
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

#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
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
pub async fn post_messages(
    State(node): State<Arc<Node>>,
    JsonBody(request): JsonBody<SendRequest>,
) -> Result<(StatusCode, Json<SendView>), ApiError> {
    let outgoing = request.prepare(&node.sender)?;
    let mut sent = send(&node, "api", vec![outgoing]).await?;
    Ok((StatusCode::ACCEPTED, Json(SendView::from(sent.remove(0)))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    messages: Vec<SendRequest>,
}

#[derive(Debug, Serialize)]
pub struct BatchResponse {
    /// One entry per message, in request order.
    pub results: Vec<SendView>,
}

/// `POST /v1/messages/batch`: many messages in one request, each as
/// `POST /v1/messages` would take it (a backend sending distinct
/// notifications to many users saves a round trip per message). The batch is
/// validated as a whole first: one bad message is a 400 naming its index
/// and nothing is stored. Messages to the same user keep the batch's order.
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

#[derive(Debug, Serialize)]
pub struct PresenceView {
    user_id: String,
    online: bool,
    connections: Vec<herald_core::ConnInfo>,
}

/// `GET /v1/users/{id}/presence`
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

#[derive(Debug, Serialize)]
pub struct OnlineView {
    online_users: u64,
}

/// `GET /v1/presence`: how many users are online cluster-wide.
pub async fn online(State(node): State<Arc<Node>>) -> Result<Json<OnlineView>, ApiError> {
    Ok(Json(OnlineView {
        online_users: node.presence.online_users().await?,
    }))
}

#[derive(Debug, Deserialize)]
pub struct InboxQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct InboxView {
    user_id: String,
    last_seq: u64,
    messages: Vec<Message>,
}

/// `GET /v1/users/{id}/inbox?after=N&limit=M`
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

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Serialize)]
pub struct MarkResponse {
    changed: u64,
}

/// `POST /v1/users/{id}/mark`: as the WebSocket `mark`, for a backend.
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActRequest {
    message: uuid::Uuid,
    action: String,
}

#[derive(Debug, Serialize)]
pub struct ActResponse {
    message: uuid::Uuid,
    acted: String,
}

/// `POST /v1/users/{id}/act`: as the WebSocket `act`, for a backend: 200
/// `{message, acted}`; 409 `already_acted` when an act came first.
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountsParams {
    tags: Option<String>,
    severity: Option<String>,
}

/// With a filter, the `counts` request's answer: its unread messages.
#[derive(Debug, Serialize)]
pub struct FilteredCounts {
    unread: u64,
}

/// `GET /v1/users/{id}/counts`: the same object as the `counts` frame;
/// with `?tags=a,b` and/or `?severity=`, `{"unread": n}` of that filter
/// (the `counts` request's answer).
pub async fn counts(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
    query: Result<Query<CountsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let Query(params) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if params.tags.is_none() && params.severity.is_none() {
        return Ok(Json(node.inbox.counts(&user).await?.counts()).into_response());
    }
    let filter = TagFilter::from_query(params.tags.as_deref(), params.severity.as_deref())?;
    let unread = node.inbox.unread_matching(&user, &filter).await?;
    Ok(Json(FilteredCounts { unread }).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    category: Option<String>,
    state: Option<StateFilter>,
    before: Option<String>,
    limit: Option<usize>,
    /// `true`: the snoozed messages only.
    snoozed: Option<bool>,
    /// `a,b`: messages with any of these tags.
    tags: Option<String>,
    severity: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HistoryView {
    messages: Vec<HistoryEntry>,
    next: Option<String>,
}

/// `GET /v1/users/{id}/messages?category=&state=&before=&limit=`: history
/// as the WebSocket `history` gives it.
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

#[derive(Debug, Serialize)]
pub struct SubscriptionView {
    /// Whether this call changed anything (false: it was already so).
    changed: bool,
}

/// `PUT /v1/users/{id}/topics/{topic}`: subscribes the user.
pub async fn subscribe(
    State(node): State<Arc<Node>>,
    Path((user, topic)): Path<(String, String)>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changed = node.topics.subscribe(&user, &topic).await?;
    Ok(Json(SubscriptionView { changed }))
}

/// `DELETE /v1/users/{id}/topics/{topic}`: unsubscribes the user.
pub async fn unsubscribe(
    State(node): State<Arc<Node>>,
    Path((user, topic)): Path<(String, String)>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changed = node.topics.unsubscribe(&user, &topic).await?;
    Ok(Json(SubscriptionView { changed }))
}

#[derive(Debug, Serialize)]
pub struct TopicsView {
    topics: Vec<String>,
}

/// `GET /v1/users/{id}/topics`: the user's topics, sorted.
pub async fn user_topics(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
) -> Result<Json<TopicsView>, ApiError> {
    Ok(Json(TopicsView {
        topics: node.topics.topics_of(&user).await?,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribersQuery {
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
pub struct BlocksView {
    blocked: Vec<String>,
}

/// `PUT /v1/users/{id}/blocks/{user}`: `id` refuses private messages from
/// `user` from now on.
pub async fn block(
    State(node): State<Arc<Node>>,
    Path((user, blocked)): Path<(String, String)>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changed = node.blocklist.block(&user, &blocked).await?;
    Ok(Json(SubscriptionView { changed }))
}

/// `DELETE /v1/users/{id}/blocks/{user}`.
pub async fn unblock(
    State(node): State<Arc<Node>>,
    Path((user, blocked)): Path<(String, String)>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changed = node.blocklist.unblock(&user, &blocked).await?;
    Ok(Json(SubscriptionView { changed }))
}

/// `GET /v1/users/{id}/blocks`: whom the user blocked, sorted.
pub async fn blocks(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
) -> Result<Json<BlocksView>, ApiError> {
    Ok(Json(BlocksView {
        blocked: node.blocklist.blocked_by(&user).await?,
    }))
}
