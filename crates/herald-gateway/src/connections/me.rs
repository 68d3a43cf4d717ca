//! `POST /v1/me/requests`: one client frame in, its reply out, for a
//! browser on the SSE fallback (or any client without a socket). The user
//! comes from the same credentials as `/ws`, never from the body.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use herald_protocol::{ClientFrame, Codec, ServerFrame};
use serde::Deserialize;

use super::answer::answer;
use crate::error::ApiError;
use crate::node::Node;

#[derive(Debug, Deserialize)]
pub struct MeQuery {
    token: Option<String>,
    device: Option<String>,
}

/// 200 with the reply frame (`ok` false for an operation that failed, as
/// on the WebSocket), 204 for `ack`; 400 for a body that is not a frame
/// and for `sync` (an SSE stream resumes by reconnecting); 401 without
/// valid credentials; 429 past `limits.requests_per_sec`.
pub async fn requests(
    State(node): State<Arc<Node>>,
    Query(query): Query<MeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match node
        .auth()
        .handshake(&headers, query.token.as_deref())
        .await
    {
        Ok(user) => user,
        Err(err) => return err.into_response(),
    };
    let device = match crate::auth::device(query.device) {
        Ok(device) => device,
        Err(err) => return err.into_response(),
    };
    if body.len() > node.settings.ws.max_message_size {
        return ApiError::too_large(format!(
            "a frame is at most {} bytes (ws.max_message_size)",
            node.settings.ws.max_message_size
        ))
        .into_response();
    }
    let frame = match Codec::Json.decode_client(&body) {
        Ok(frame) => frame,
        Err(e) => return ApiError::bad_request(e.message).into_response(),
    };
    if !matches!(frame, ClientFrame::Ack { .. }) && !node.limiter.allow(&user) {
        return ApiError::rate_limited(crate::limits::over_rate(&node.settings.limits))
            .into_response();
    }
    if matches!(frame, ClientFrame::Sync { .. }) {
        return ApiError::bad_request(
            "sync needs a connection: reconnect /sse (Last-Event-ID resumes it)",
        )
        .into_response();
    }
    match answer(&node, &user, &device, frame).await {
        Some(reply) => {
            let bytes = Codec::Json.encode_server(&ServerFrame::Reply(reply));
            (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}
