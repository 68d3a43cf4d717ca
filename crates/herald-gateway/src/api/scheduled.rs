//! Scheduled sends on the server API: what a send with `deliver_at`
//! answers, and `GET`/`DELETE /v1/scheduled/{id}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use herald_core::backend::{Cancelled, ScheduledStatus};
use herald_core::Sent;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, ErrorResponse};
use crate::node::Node;

/// One send's answer: where it was stored, or, scheduled, its id and due
/// time (`{"scheduled": id, "deliver_at": ms}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SendView {
    Stored(Sent),
    Scheduled {
        /// The scheduled send's id (`GET /v1/scheduled/{id}`).
        scheduled: Uuid,
        /// When it is due, unix ms.
        deliver_at: i64,
    },
}

impl From<Sent> for SendView {
    fn from(sent: Sent) -> Self {
        match sent.deliver_at {
            Some(deliver_at) => SendView::Scheduled {
                scheduled: sent.id,
                deliver_at,
            },
            None => SendView::Stored(sent),
        }
    }
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::invalid(format!("{id:?} is not a scheduled send id")))
}

fn unknown() -> ApiError {
    ApiError::not_found("no such scheduled send (or it ended over a day ago)")
}

/// `GET /v1/scheduled/{id}`: `{"id", "state": pending|delivered|cancelled,
/// "deliver_at"}`, from any node.
#[utoipa::path(
    get,
    path = "/scheduled/{id}",
    tag = "messages",
    summary = "A scheduled send's state",
    params(("id" = uuid::Uuid, Path, description = "The id a send with `deliver_at` answered")),
    responses(
        (status = 200, description = "The scheduled send", body = ScheduledStatus),
        (status = 404, description = "`not_found`: no such scheduled send, or it ended over a day ago", body = ErrorResponse),
    ),
    security(("api_key" = ["send"])),
)]
pub async fn scheduled(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Json<ScheduledStatus>, ApiError> {
    match node.scheduler.status(parse_id(&id)?).await? {
        Some(status) => Ok(Json(status)),
        None => Err(unknown()),
    }
}

/// `DELETE /v1/scheduled/{id}`: 200 with the status (cancelled), 409 once
/// delivered (or being delivered), 404 unknown.
#[utoipa::path(
    delete,
    path = "/scheduled/{id}",
    tag = "messages",
    summary = "Cancel a scheduled send",
    params(("id" = uuid::Uuid, Path, description = "The id a send with `deliver_at` answered")),
    responses(
        (status = 200, description = "Cancelled (now or before): nothing will be delivered", body = ScheduledStatus),
        (status = 404, description = "`not_found`: no such scheduled send", body = ErrorResponse),
        (status = 409, description = "`conflict`: delivered, or being delivered, already", body = ErrorResponse),
    ),
    security(("api_key" = ["send"])),
)]
pub async fn cancel_scheduled(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Json<ScheduledStatus>, ApiError> {
    let id = parse_id(&id)?;
    match node.scheduler.cancel(id).await? {
        Cancelled::Cancelled => {}
        Cancelled::Delivered => {
            return Err(herald_core::CoreError::Conflict(
                "the scheduled send was delivered (or is being delivered) already".into(),
            )
            .into())
        }
        Cancelled::Unknown => return Err(unknown()),
    }
    match node.scheduler.status(id).await? {
        Some(status) => Ok(Json(status)),
        None => Err(unknown()),
    }
}
