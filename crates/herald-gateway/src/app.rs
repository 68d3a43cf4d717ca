//! The HTTP routes of a node, and serving them until shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

use bytes::Bytes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_keys::{self, CurrentKeys, Scope};
use crate::connections::{me, socketio, sse, ws_handshake};
use crate::node::Node;
use crate::{api, dev, openapi};

/// The routes the OpenAPI document describes (`openapi.rs`): the server
/// API, `POST /v1/me/requests` and the probes. Each is registered with its
/// `#[utoipa::path]` annotation through `routes!`, which takes the route's
/// path and methods from it, so what is served and what is described are
/// one list. `keys` are the API keys each group's middleware checks.
pub fn documented(keys: Arc<CurrentKeys>) -> OpenApiRouter<Arc<Node>> {
    // Each group of routes needs its scope of API key (`api_keys.rs`).
    let send = OpenApiRouter::new()
        .routes(routes!(api::messages::post_messages))
        .routes(routes!(api::messages::post_batch))
        .routes(routes!(api::fanout::publish))
        .routes(routes!(api::fanout::job))
        .routes(routes!(
            api::scheduled::scheduled,
            api::scheduled::cancel_scheduled
        ))
        .route_layer(from_fn_with_state(
            (keys.clone(), Scope::Send),
            api_keys::require,
        ));
    let users = OpenApiRouter::new()
        .routes(routes!(api::presence::online))
        .routes(routes!(api::presence::user_presence))
        .routes(routes!(api::inbox::inbox))
        .routes(routes!(api::inbox::mark))
        .routes(routes!(api::inbox::act))
        .routes(routes!(api::inbox::counts))
        .routes(routes!(api::inbox::history))
        .routes(routes!(api::topics::user_topics))
        .routes(routes!(api::conversations::conversations))
        .routes(routes!(api::conversations::conversation))
        .routes(routes!(api::topics::subscribe, api::topics::unsubscribe))
        .routes(routes!(api::topics::topic_subscribers))
        .routes(routes!(api::blocks::blocks))
        .routes(routes!(api::blocks::block, api::blocks::unblock))
        .route_layer(from_fn_with_state(
            (keys.clone(), Scope::Users),
            api_keys::require,
        ));
    let admin = OpenApiRouter::new()
        .routes(routes!(api::webhooks::dead))
        .routes(routes!(api::webhooks::retry_dead))
        .routes(routes!(api::user_data::export_user))
        .routes(routes!(api::user_data::erase_user))
        .route_layer(from_fn_with_state((keys, Scope::Admin), api_keys::require));
    // Authorized in the handler: a `users` key or the user's own token.
    let own = OpenApiRouter::new().routes(routes!(
        api::preferences::get_preferences,
        api::preferences::patch_preferences
    ));
    let v1 = send.merge(users).merge(admin).merge(own);
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(me::requests))
        .nest("/v1", v1)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

pub fn router(node: Arc<Node>) -> Router {
    let (documented, doc) = documented(node.api_keys()).split_for_parts();
    let doc = Bytes::from(openapi::to_json(&openapi::finish(doc)));
    // `/socket.io/` only when enabled: off, the layer is not there at all.
    let socketio = socketio::layer(&node);
    let router = Router::new()
        .merge(documented)
        .route("/ws", get(ws_handshake::handler))
        .route("/sse", get(sse::handler))
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }),
        )
        .merge(dev::router(&node.settings.dev))
        .route("/metrics", get(metrics))
        .fallback(|| async { crate::error::ApiError::not_found("no such route") })
        .with_state(node);
    match socketio {
        // `own_request` first, so what Engine.IO keeps is its copy.
        Some(layer) => router
            .layer(layer)
            .layer(axum::middleware::map_request(socketio::own_request)),
        None => router,
    }
}

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    summary = "Liveness",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")),
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Ready: not draining, not shedding (admission control), not moving
/// connections away (rebalancing), and the backend answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "Readiness",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "`draining`, `overloaded`, `rebalancing` or `backend unavailable`", body = String, content_type = "text/plain"),
    ),
)]
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
