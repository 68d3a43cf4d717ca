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
use crate::error::{ApiError, ErrorResponse};
use crate::node::Node;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MeQuery {
    /// The user's token, when it cannot go in `Authorization` (the
    /// `user_token_query` scheme).
    token: Option<String>,
    /// The device, as on `/ws` (1 to 64 bytes of `[A-Za-z0-9_.:-]`).
    device: Option<String>,
}

/// The `reply` frame, as the WebSocket would send it. Only the OpenAPI
/// document names it: the handler writes `ServerFrame::Reply`, which
/// serializes to this.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ReplyFrame {
    #[serde(rename = "type")]
    kind: ReplyType,
    #[serde(flatten)]
    reply: herald_protocol::Reply,
}

/// Always `reply`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplyType {
    Reply,
}

/// 200 with the reply frame (`ok` false for an operation that failed, as
/// on the WebSocket), 204 for `ack`; 400 for a body that is not a frame
/// and for `sync` (an SSE stream resumes by reconnecting); 401 without
/// valid credentials; 429 past `limits.requests_per_sec`.
#[utoipa::path(
    post,
    path = "/v1/me/requests",
    tag = "client requests",
    summary = "One client frame, its reply",
    description = "For a browser on the SSE fallback, or any client without a socket: the body is one client frame of `docs/protocol.md` (any but `sync`), the answer its reply frame. The user is the one the credentials name, never the body.",
    params(MeQuery),
    request_body(content = ClientFrame, example = json!({"type": "mark", "rid": 1, "state": "read", "all": true})),
    responses(
        (status = 200, description = "The reply frame (`ok` false for an operation that failed, as on the WebSocket)", body = ReplyFrame),
        (status = 204, description = "An `ack`: nothing to answer"),
        (status = 400, description = "`bad_request`: not a client frame, or a `sync` (an SSE stream resumes by reconnecting)", body = ErrorResponse),
        (status = 403, description = "`unauthorized`: a cookie from an origin not allowed", body = ErrorResponse),
        (status = 413, description = "`bad_request`: a frame over `ws.max_message_size`", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: over `limits.requests_per_sec`", body = ErrorResponse),
    ),
    security(("user_token" = []), ("user_token_query" = []), ("user_cookie" = [])),
)]
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
