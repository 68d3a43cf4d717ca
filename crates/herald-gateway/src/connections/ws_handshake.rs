//! The WebSocket handshake: who is connecting and which codec they speak.

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use herald_protocol::Codec;
use serde::Deserialize;

use super::connection;
use crate::error::ApiError;
use crate::node::Node;

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    token: Option<String>,
    device: Option<String>,
}

/// Authenticates before upgrading: a handshake without valid credentials
/// gets 401 and never becomes a connection.
pub async fn handler(
    State(node): State<Arc<Node>>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let refuse = |cause: &str, response: Response| {
        node.metrics.handshake_refused(cause);
        response
    };
    if node.is_shutting_down() {
        let err = ApiError::unavailable("this node is draining; connect to another");
        return refuse("draining", err.into_response());
    }
    // Before authentication: a node that sheds spends nothing on the
    // handshakes it refuses.
    if let Err(refusal) = node.admission.admit(node.hub.connection_count()) {
        return refuse("overloaded", refusal.into_response());
    }
    if let Err(moving) = node.rebalance_door.admit() {
        return refuse("rebalancing", moving.into_response());
    }
    let user = match node
        .auth()
        .handshake(&headers, query.token.as_deref())
        .await
    {
        Ok(user) => user,
        Err(err) => {
            let cause = match err.status.as_u16() {
                401 => "unauthorized",
                403 => "forbidden",
                503 => "backend",
                _ => "bad_credentials",
            };
            return refuse(cause, err.into_response());
        }
    };
    if let Err(err) = crate::limits::admit(&node.settings.limits, &node.hub, &user) {
        let cause = if err.status == 503 {
            "node_full"
        } else {
            "user_connections"
        };
        return refuse(cause, err.into_response());
    }
    let device = match crate::auth::device(query.device) {
        Ok(device) => device,
        Err(err) => return refuse("bad_device", err.into_response()),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return refuse("not_websocket", rejection.into_response()),
    };
    let codec = match pick_codec(&upgrade) {
        Ok(codec) => codec,
        Err(err) => return refuse("bad_subprotocol", err.into_response()),
    };
    let ws = &node.settings.ws;
    upgrade
        .protocols(Codec::ALL.map(Codec::subprotocol))
        .read_buffer_size(ws.read_buffer_size)
        .write_buffer_size(ws.write_buffer_size)
        .max_write_buffer_size(ws.max_write_buffer_size)
        .max_message_size(ws.max_message_size)
        .max_frame_size(ws.max_message_size)
        .on_upgrade(move |socket| connection::run(socket, node, user, device, codec))
}

/// The first subprotocol the client offers that we speak; JSON when it offers
/// none. Offering only unknown ones is an error rather than a silent JSON.
fn pick_codec(upgrade: &WebSocketUpgrade) -> Result<Codec, ApiError> {
    let offered: Vec<&str> = upgrade
        .requested_protocols()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(Codec::Json);
    }
    offered
        .iter()
        .find_map(|p| Codec::from_subprotocol(p))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "no supported subprotocol in {offered:?}; use {} or {}",
                herald_protocol::SUBPROTOCOL_JSON,
                herald_protocol::SUBPROTOCOL_MSGPACK
            ))
        })
}
