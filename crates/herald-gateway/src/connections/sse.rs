//! `GET /sse`: the fallback for networks that block WebSocket. The same
//! credentials and the same JSON frames as `/ws`, as Server-Sent Events;
//! each message event's `id:` is `<inbox seq>.<all seq>`, so the browser's
//! automatic reconnect (`Last-Event-ID`) resumes both streams without a
//! gap. The client's requests go to `POST /v1/me/requests` (`me.rs`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::connection::run_sse;
use super::transport::SseSink;
use crate::error::ApiError;
use crate::node::Node;

/// Flushed event batches buffered towards the response body; a client
/// that reads slower than this fills it and the connection's writes time
/// out (`ws.write_timeout_ms`), as a stalled WebSocket does.
const BODY_BUFFER: usize = 16;

#[derive(Debug, Deserialize)]
pub struct SseQuery {
    token: Option<String>,
    device: Option<String>,
    /// Where to start the inbox when there is no `Last-Event-ID`.
    since: Option<u64>,
    /// The same for the `all` stream.
    since_all: Option<u64>,
}

pub async fn handler(
    State(node): State<Arc<Node>>,
    Query(query): Query<SseQuery>,
    headers: HeaderMap,
) -> Response {
    if node.is_shutting_down() {
        return ApiError::unavailable("this node is draining; connect to another").into_response();
    }
    if let Err(refusal) = node.admission.admit(node.hub.connection_count()) {
        return refusal.into_response();
    }
    if let Err(moving) = node.rebalance_door.admit() {
        return moving.into_response();
    }
    let user = match node
        .auth()
        .handshake(&headers, query.token.as_deref())
        .await
    {
        Ok(user) => user,
        Err(err) => return err.into_response(),
    };
    if let Err(err) = crate::limits::admit(&node.settings.limits, &node.hub, &user) {
        return err.into_response();
    }
    let device = match crate::auth::device(query.device) {
        Ok(device) => device,
        Err(err) => return err.into_response(),
    };
    let resume = match last_event_id(&headers) {
        Ok(Some([inbox, all])) => [Some(inbox), Some(all)],
        Ok(None) => [query.since, query.since_all],
        Err(err) => return err.into_response(),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(BODY_BUFFER);
    tokio::spawn(run_sse(SseSink::new(tx), node, user, device, resume));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let bytes = rx.recv().await?;
        Some((Ok::<_, Infallible>(bytes), rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // Proxies such as nginx would otherwise hold events back.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// `Last-Event-ID: <inbox>.<all>`, as this server's events carry it.
fn last_event_id(headers: &HeaderMap) -> Result<Option<[u64; 2]>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("Last-Event-ID: not an id this server gave (<inbox>.<all>)");
    let text = value.to_str().map_err(|_| bad())?;
    let (inbox, all) = text.split_once('.').ok_or_else(bad)?;
    Ok(Some([
        inbox.parse().map_err(|_| bad())?,
        all.parse().map_err(|_| bad())?,
    ]))
}
