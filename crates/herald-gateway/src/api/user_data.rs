//! A user's data as a whole (admin scope): `GET /v1/users/{id}/export`
//! streams everything Herald holds about the user as one JSON document,
//! and `DELETE /v1/users/{id}` erases it (`docs/security.md`, *Erasure*).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::Erased;
use serde::Serialize;

use crate::error::ApiError;
use crate::node::Node;

/// `GET /v1/users/{id}/export`: the document, streamed chunk by chunk as
/// the store is read (the inbox a page of `herald_core::EXPORT_PAGE`
/// messages at a time), so a node never holds a large inbox whole. A
/// store error before the first byte is the usual JSON error; after it,
/// the response is cut short (the body ends with an error, the document
/// unfinished), never passed off as complete.
#[utoipa::path(
    get,
    path = "/users/{id}/export",
    tag = "user data",
    summary = "Everything Herald holds about a user",
    params(("id" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "One JSON document, streamed (`docs/security.md`, *Export*); a body cut short by a store error is not valid JSON", body = herald_core::ExportDocument, content_type = "application/json"),
    ),
    security(("api_key" = ["admin"])),
)]
pub async fn export_user(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut export = node.user_data.export(&id).await?;
    // The first chunk is read here, so that an error reading the small
    // parts is a status, not a cut body.
    let first = export.next_chunk().await?;
    let rest = futures_util::stream::unfold(Some(export), |export| async move {
        let mut export = export?;
        match export.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(bytes::Bytes::from(chunk)), Some(export))),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(%e, "export cut short");
                Some((Err(std::io::Error::other(e.to_string())), None))
            }
        }
    });
    let head = futures_util::stream::iter(first.map(|c| Ok(bytes::Bytes::from(c))));
    let body = Body::from_stream(futures_util::StreamExt::chain(head, rest));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// What `DELETE /v1/users/{id}` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasedView {
    pub user_id: String,
    /// What was erased, by kind (all 0 when there was nothing left).
    pub erased: Erased,
}

/// `DELETE /v1/users/{id}`: erases everything Herald holds about the user
/// (their copy of conversations; each peer keeps theirs), closes their
/// connections on every node with 4003, and says what it erased by kind.
/// Idempotent: again, it erases nothing and answers 200 with zeros.
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "user data",
    summary = "Erase a user's data",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "Erased (zeros when there was nothing left); the user's connections closed with 4003", body = ErasedView)),
    security(("api_key" = ["admin"])),
)]
pub async fn erase_user(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> Result<Json<ErasedView>, ApiError> {
    let erased = node.user_data.erase(&id).await?;
    tracing::info!(user = %id, ?erased, "user data erased");
    Ok(Json(ErasedView {
        user_id: id,
        erased,
    }))
}
