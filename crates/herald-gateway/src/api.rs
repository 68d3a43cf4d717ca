//! The server API for application backends: send messages, read presence
//! and inboxes. JSON in and out, `Authorization: Bearer <api key>`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::{Draft, StreamKey};
use herald_protocol::{Category, Message, Stream};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::api_key_matches;
use crate::error::ApiError;
use crate::node::Node;

/// Most users one request may address.
const MAX_USERS: usize = 1_000;
/// Longest body accepted.
const MAX_BODY: usize = 64 * 1024;
/// Most messages one inbox read returns.
const MAX_PAGE: usize = 1_000;

/// Refuses every `/v1` request without the API key.
pub async fn require_api_key(
    State(node): State<Arc<Node>>,
    request: Request,
    next: Next,
) -> Response {
    if api_key_matches(&node.settings.api.key, request.headers()) {
        next.run(request).await
    } else {
        ApiError::unauthorized("missing or wrong API key (Authorization: Bearer <key>)")
            .into_response()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    #[serde(default)]
    users: Option<Vec<String>>,
    #[serde(default)]
    all: Option<bool>,
}

#[derive(Debug, Deserialize)]
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
}

#[derive(Debug, Serialize, PartialEq)]
pub struct StoredAt {
    pub stream: Stream,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub seq: u64,
}

#[derive(Debug, Serialize)]
pub struct SendResponse {
    pub id: Uuid,
    pub stored: Vec<StoredAt>,
}

enum Target {
    Users(Vec<String>),
    All,
}

impl SendRequest {
    fn validate(self) -> Result<(Target, Draft), ApiError> {
        let target = match (self.to.users, self.to.all) {
            (Some(users), None) => {
                if users.is_empty() || users.len() > MAX_USERS {
                    return Err(ApiError::invalid(format!(
                        "to.users must list 1 to {MAX_USERS} users"
                    )));
                }
                for user in &users {
                    herald_core::validate_user_id(user)
                        .map_err(|e| ApiError::invalid(format!("to.users: {e}")))?;
                }
                let mut users = users;
                users.sort();
                users.dedup();
                Target::Users(users)
            }
            (None, Some(true)) => Target::All,
            _ => {
                return Err(ApiError::invalid(
                    r#"to must be {"users":[...]} or {"all":true}"#,
                ))
            }
        };
        let category: Category = self
            .category
            .parse()
            .map_err(|e: herald_protocol::UnknownCategory| ApiError::invalid(e.to_string()))?;
        if self.body.len() > MAX_BODY {
            return Err(ApiError::invalid(format!(
                "body is longer than {MAX_BODY} bytes"
            )));
        }
        let mut draft = Draft::new(category, self.body);
        draft.title = self.title;
        draft.from = self.from;
        match self.data {
            None => {}
            Some(data) if data.is_object() => draft.data = data,
            Some(_) => return Err(ApiError::invalid("data must be a JSON object")),
        }
        Ok((target, draft))
    }
}

/// `POST /v1/messages`: stores the message in each receiver's inbox (or once
/// in the `all` stream) and answers 202 once stored. Live push happens after.
pub async fn post_messages(
    State(node): State<Arc<Node>>,
    body: Result<Json<SendRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<SendResponse>), ApiError> {
    let Json(request) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (target, draft) = request.validate()?;
    let id = draft.id;
    let keys = match target {
        Target::Users(users) => users.into_iter().map(StreamKey::Inbox).collect(),
        Target::All => vec![StreamKey::All],
    };
    let mut stored = Vec::with_capacity(keys.len());
    for key in keys {
        let message = node.store.append(&key, draft.clone()).await?;
        node.metrics.appended("api");
        stored.push(StoredAt {
            stream: message.stream,
            user: key.user().map(str::to_owned),
            seq: message.seq,
        });
    }
    Ok((StatusCode::ACCEPTED, Json(SendResponse { id, stored })))
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
