//! The HTTP routes of a node, and serving them until shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

use crate::api_keys::{self, Scope};
use crate::connections::{me, socketio, sse, ws_handshake};
use crate::node::Node;
use crate::{api, dev};

pub fn router(node: Arc<Node>) -> Router {
    // Each group of routes needs its scope of API key (`api_keys.rs`).
    let send = Router::new()
        .route("/messages", post(api::post_messages))
        .route("/messages/batch", post(api::post_batch))
        .route("/topics/{topic}/messages", post(api::publish))
        .route("/jobs/{id}", get(api::job))
        .route(
            "/scheduled/{id}",
            get(api::scheduled).delete(api::cancel_scheduled),
        )
        .route_layer(from_fn_with_state(
            (node.api_keys(), Scope::Send),
            api_keys::require,
        ));
    let users = Router::new()
        .route("/presence", get(api::online))
        .route("/users/{id}/presence", get(api::user_presence))
        .route("/users/{id}/inbox", get(api::inbox))
        .route("/users/{id}/mark", post(api::mark))
        .route("/users/{id}/act", post(api::act))
        .route("/users/{id}/counts", get(api::counts))
        .route("/users/{id}/messages", get(api::history))
        .route("/users/{id}/topics", get(api::user_topics))
        .route("/users/{id}/conversations", get(api::conversations))
        .route("/users/{id}/conversations/{peer}", get(api::conversation))
        .route(
            "/users/{id}/topics/{topic}",
            axum::routing::put(api::subscribe).delete(api::unsubscribe),
        )
        .route("/topics/{topic}/subscribers", get(api::topic_subscribers))
        .route("/users/{id}/blocks", get(api::blocks))
        .route(
            "/users/{id}/blocks/{user}",
            axum::routing::put(api::block).delete(api::unblock),
        )
        .route_layer(from_fn_with_state(
            (node.api_keys(), Scope::Users),
            api_keys::require,
        ));
    let admin = Router::new()
        .route("/webhooks/dead", get(api::dead_webhooks))
        .route("/webhooks/dead/{id}/retry", post(api::retry_dead_webhook))
        .route("/users/{id}/export", get(api::export_user))
        .route("/users/{id}", axum::routing::delete(api::erase_user))
        .route_layer(from_fn_with_state(
            (node.api_keys(), Scope::Admin),
            api_keys::require,
        ));
    // Authorized in the handler: a `users` key or the user's own token.
    let own = Router::new().route(
        "/users/{id}/preferences",
        get(api::get_preferences).patch(api::patch_preferences),
    );
    let v1 = send.merge(users).merge(admin).merge(own);
    // `/socket.io/` only when enabled: off, the layer is not there at all.
    let socketio = socketio::layer(&node);
    let router = Router::new()
        .route("/ws", get(ws_handshake::handler))
        .route("/sse", get(sse::handler))
        .route("/v1/me/requests", post(me::requests))
        .nest("/v1", v1)
        .merge(dev::router(&node.settings.dev))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { crate::error::ApiError::not_found("no such route") })
        .with_state(node);
    match socketio {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// Ready: not draining, not shedding (admission control), not moving
/// connections away (rebalancing), and the backend answers.
async fn readyz(State(node): State<Arc<Node>>) -> impl IntoResponse {
    if node.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    if node.admission.shedding().is_some() {
        return (StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    }
    if node.rebalance_door.is_shut(std::time::Instant::now()) {
        return (StatusCode::SERVICE_UNAVAILABLE, "rebalancing");
    }
    let probe = node.store.last_seq(&herald_core::StreamKey::All);
    match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "backend unavailable"),
    }
}

async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics.render(node.hub.take_queue_high_water()),
    )
}

/// Serves `node` on `listener` until `shutdown` completes, then closes every
/// connection with 1001 so clients reconnect elsewhere.
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(node.clone());
    let stopping = node.clone();
    // Small frames go out at once instead of waiting for Nagle's timer.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // The listener keeps accepting while draining, so a new upgrade
            // gets a clear 503 rather than a refused connection.
            stopping.drain().await;
            tracing::info!("drained; shutting down");
        })
        .await
}
