//! Topic subscriptions: a user's topics, subscribe and unsubscribe, a
//! topic's subscribers (publishing is in `fanout.rs`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::node::Node;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    /// Whether this call changed anything (false: it was already so).
    pub(super) changed: bool,
}

/// `PUT /v1/users/{id}/topics/{topic}`: subscribes the user.
#[utoipa::path(
    put,
    path = "/users/{id}/topics/{topic}",
    tag = "topics",
    summary = "Subscribe a user to a topic",
    params(("id" = String, Path, description = "The user id"), ("topic" = String, Path, description = "The topic (`article:42`; following a user is `user:<id>`)")),
    responses((status = 200, description = "Subscribed", body = SubscriptionView)),
    security(("api_key" = ["users"])),
)]
pub async fn subscribe(
    State(node): State<Arc<Node>>,
    Path((user, topic)): Path<(String, String)>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changed = node.topics.subscribe(&user, &topic).await?;
    Ok(Json(SubscriptionView { changed }))
}

/// `DELETE /v1/users/{id}/topics/{topic}`: unsubscribes the user.
#[utoipa::path(
    delete,
    path = "/users/{id}/topics/{topic}",
    tag = "topics",
    summary = "Unsubscribe a user from a topic",
    params(("id" = String, Path, description = "The user id"), ("topic" = String, Path, description = "The topic")),
    responses((status = 200, description = "Unsubscribed", body = SubscriptionView)),
    security(("api_key" = ["users"])),
)]
pub async fn unsubscribe(
    State(node): State<Arc<Node>>,
    Path((user, topic)): Path<(String, String)>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let changed = node.topics.unsubscribe(&user, &topic).await?;
    Ok(Json(SubscriptionView { changed }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicsView {
    topics: Vec<String>,
}

/// `GET /v1/users/{id}/topics`: the user's topics, sorted.
#[utoipa::path(
    get,
    path = "/users/{id}/topics",
    tag = "topics",
    summary = "A user's topics",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "The user's topics, sorted", body = TopicsView)),
    security(("api_key" = ["users"])),
)]
pub async fn user_topics(
    State(node): State<Arc<Node>>,
    Path(user): Path<String>,
) -> Result<Json<TopicsView>, ApiError> {
    Ok(Json(TopicsView {
        topics: node.topics.topics_of(&user).await?,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SubscribersQuery {
    /// The `next` of the page before.
    after: Option<String>,
    /// 1 to 10,000 (default 1,000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscribersView {
    topic: String,
    /// Subscribers in user-id byte order.
    subscribers: Vec<String>,
    /// Pass as `after` for the next page; `null` at the end.
    next: Option<String>,
    /// Subscribers in all.
    total: u64,
}

/// Most subscribers one page returns.
const MAX_SUBSCRIBERS_PAGE: usize = 10_000;

/// `GET /v1/topics/{topic}/subscribers?after=&limit=`: a page of the
/// topic's subscribers, for backends.
#[utoipa::path(
    get,
    path = "/topics/{topic}/subscribers",
    tag = "topics",
    summary = "A page of a topic's subscribers",
    params(("topic" = String, Path, description = "The topic"), SubscribersQuery),
    responses((status = 200, description = "Subscribers in user-id byte order", body = SubscribersView)),
    security(("api_key" = ["users"])),
)]
pub async fn topic_subscribers(
    State(node): State<Arc<Node>>,
    Path(topic): Path<String>,
    query: Result<Query<SubscribersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SubscribersView>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(1_000);
    if limit == 0 || limit > MAX_SUBSCRIBERS_PAGE {
        return Err(ApiError::invalid(format!(
            "limit: must be 1 to {MAX_SUBSCRIBERS_PAGE}"
        )));
    }
    let subscribers = node
        .topics
        .subscribers(&topic, query.after.as_deref(), limit)
        .await?;
    let total = node.topics.subscriber_count(&topic).await?;
    let next = (subscribers.len() == limit)
        .then(|| subscribers.last().cloned())
        .flatten();
    Ok(Json(SubscribersView {
        topic,
        subscribers,
        next,
        total,
    }))
}
