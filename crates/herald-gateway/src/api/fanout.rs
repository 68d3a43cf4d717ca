//! Publishing to a topic and following the job it becomes.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use herald_core::{JobStatus, NewMessage, Published};
use serde::Deserialize;

use super::messages::API_SCOPE;
use crate::error::{ApiError, ErrorResponse};
use crate::node::Node;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Default: `resource_publish` for `user:<id>` topics (a follow),
    /// `resource_subscription` for any other.
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    title: Option<String>,
    body: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    /// The publisher: shown to the receivers, and not a receiver itself.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<time::OffsetDateTime>,
    /// Each subscriber's message collapses with their unread one of this
    /// group.
    #[serde(default)]
    group_key: Option<String>,
    /// Nobody may mute it (see `POST /v1/messages`).
    #[serde(default)]
    critical: bool,
    /// Action buttons (see `POST /v1/messages`).
    #[serde(default)]
    actions: Vec<herald_protocol::Action>,
    /// Labels of each subscriber's message (as on a send).
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// `low`, `normal` (the default), `high` or `critical`.
    #[serde(default)]
    severity: Option<String>,
}

/// `POST /v1/topics/{topic}/messages`: snapshots the topic's subscribers
/// and queues a job that gives each of them one inbox message; 202 with
/// the job id and the snapshot's size once the job is durable.
#[utoipa::path(
    post,
    path = "/topics/{topic}/messages",
    tag = "topics",
    summary = "Publish to a topic's subscribers",
    params(("topic" = String, Path, description = "The topic (`article:42`, `user:<id>`)")),
    request_body(content = PublishRequest, example = json!({
        "title": "New comment",
        "body": "bob replied to your article",
        "from": "bob",
        "idempotency_key": "comment-981"
    })),
    responses(
        (status = 202, description = "The job is durable; follow it with `GET /v1/jobs/{id}`", body = Published),
        (status = 409, description = "`conflict`: the idempotency key was used for another request", body = ErrorResponse),
    ),
    security(("api_key" = ["send"])),
)]
pub async fn publish(
    State(node): State<Arc<Node>>,
    Path(topic): Path<String>,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    let Json(request) = body.map_err(ApiError::from_json_rejection)?;
    let message = NewMessage {
        category: request.category.unwrap_or_default(),
        from: request.from,
        title: request.title,
        body: request.body,
        data: request.data,
        expires_at: request.expires_at,
        group_key: request.group_key,
        critical: request.critical,
        fallback_after_secs: None,
        actions: request.actions,
        tags: request.tags,
        severity: request.severity,
    };
    let published = node
        .fanout
        .publish(API_SCOPE, &topic, message, request.idempotency_key)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(published)))
}

/// `GET /v1/jobs/{id}`: a publish job's state and progress, from any node.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "topics",
    summary = "A publish job's progress",
    params(("id" = uuid::Uuid, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job", body = JobStatus),
        (status = 404, description = "`not_found`: no such job, or it ended over a day ago", body = ErrorResponse),
    ),
    security(("api_key" = ["send"])),
)]
pub async fn job(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>, ApiError> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::invalid(format!("{id:?} is not a job id")))?;
    match node.fanout.status(id).await? {
        Some(status) => Ok(Json(status)),
        None => Err(ApiError::not_found(
            "no such job (or it ended over a day ago)",
        )),
    }
}
