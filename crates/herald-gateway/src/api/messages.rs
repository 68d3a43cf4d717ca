//! Sending: `POST /v1/messages` and `POST /v1/messages/batch`, each
//! message checked by the one validator every transport uses, then stored
//! through core's `Sender`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_core::{NewMessage, Outgoing, Sender, Sent};
use serde::{Deserialize, Serialize};

use super::json_body::JsonBody;
use super::SendView;
use crate::error::{ApiError, ErrorResponse};
use crate::node::Node;

/// Most messages in one `POST /v1/messages/batch`.
pub const MAX_BATCH_MESSAGES: usize = 1_000;
/// Most inbox appends one batch may cause (messages × their users).
const MAX_BATCH_APPENDS: usize = 10_000;
/// The idempotency scope of server API sends (there is one API key).
pub(super) const API_SCOPE: &str = "api";

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
