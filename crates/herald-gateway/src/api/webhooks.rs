//! The dead-letter list of the unread fallback webhooks (admin scope):
//! `GET /v1/webhooks/dead?limit=&after=` and
//! `POST /v1/webhooks/dead/{id}/retry`.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use herald_core::{RetryDead, WebhookEvent, Webhooks};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, ErrorResponse};
use crate::node::Node;

/// Most dead events one page lists.
const MAX_DEAD_PAGE: usize = 1_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    /// 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The last id of the page before.
    after: Option<String>,
}

/// One dead event as the list shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadView {
    pub id: Uuid,
    pub user: String,
    pub message: Uuid,
    /// Unix ms.
    pub created_at: Option<i64>,
    pub dead_at: Option<i64>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The body every try POSTed.
    pub event: serde_json::Value,
}

impl From<WebhookEvent> for DeadView {
    fn from(e: WebhookEvent) -> Self {
        let event = e
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(serde_json::Value::Null);
        DeadView {
            id: e.id,
            user: e.user,
            message: e.message,
            created_at: e.created_at,
            dead_at: e.dead_at,
            attempts: e.attempts,
            last_error: e.last_error,
            event,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadPage {
    pub events: Vec<DeadView>,
    /// `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Uuid>,
}

fn webhooks(node: &Node) -> Result<&Arc<Webhooks>, ApiError> {
    node.webhooks.as_ref().ok_or_else(|| {
        ApiError::not_found("webhooks are off on this node (webhooks.url is not set)")
    })
}

fn parse_id(field: &str, id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::invalid(format!("{field}: {id:?} is not an event id")))
}

/// `GET /v1/webhooks/dead?limit=&after=`: dead events in id order, with
/// their last error.
#[utoipa::path(
    get,
    path = "/webhooks/dead",
    tag = "webhooks",
    summary = "Dead webhook events",
    params(DeadQuery),
    responses(
        (status = 200, description = "Dead events in id order", body = DeadPage),
        (status = 404, description = "`not_found`: webhooks are off on this node", body = ErrorResponse),
    ),
    security(("api_key" = ["admin"])),
)]
pub async fn dead(
    State(node): State<Arc<Node>>,
    query: Result<Query<DeadQuery>, QueryRejection>,
) -> Result<Json<DeadPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_DEAD_PAGE {
        return Err(ApiError::invalid(format!(
            "limit: must be 1 to {MAX_DEAD_PAGE}"
        )));
    }
    let after = query
        .after
        .as_deref()
        .map(|a| parse_id("after", a))
        .transpose()?;
    let events = webhooks(&node)?.dead(after, limit).await?;
    let next = (events.len() == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(DeadPage {
        events: events.into_iter().map(DeadView::from).collect(),
        next,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetryView {
    pub id: Uuid,
    pub state: &'static str,
}

/// `POST /v1/webhooks/dead/{id}/retry`: 202, the event is sent again now
/// with a fresh retry schedule; 404 unknown; 409 not dead.
#[utoipa::path(
    post,
    path = "/webhooks/dead/{id}/retry",
    tag = "webhooks",
    summary = "Send a dead webhook event again",
    params(("id" = uuid::Uuid, Path, description = "The event id")),
    responses(
        (status = 202, description = "Sent again now, with a fresh retry schedule", body = RetryView),
        (status = 404, description = "`not_found`: no such event, or webhooks are off on this node", body = ErrorResponse),
        (status = 409, description = "`conflict`: the event is not dead", body = ErrorResponse),
    ),
    security(("api_key" = ["admin"])),
)]
pub async fn retry_dead(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RetryView>), ApiError> {
    let id = parse_id("id", &id)?;
    match webhooks(&node)?.retry_dead(id).await? {
        RetryDead::Retrying(event) => Ok((
            StatusCode::ACCEPTED,
            Json(RetryView {
                id: event.id,
                state: event.state.as_str(),
            }),
        )),
        RetryDead::NotDead(state) => Err(herald_core::CoreError::Conflict(format!(
            "the event is {}, not dead",
            state.as_str()
        ))
        .into()),
        RetryDead::Unknown => Err(ApiError::not_found(
            "no such webhook event (or it ended over a week ago)",
        )),
    }
}
