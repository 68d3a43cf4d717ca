//! The server API's OpenAPI 3.1 document, made from the code so that it
//! cannot drift from it: each handler's `#[utoipa::path]` annotation (its
//! route, parameters, bodies and answers) and the `ToSchema` derives of the
//! types it reads and writes (the gateway's, and core's and protocol's under
//! their `openapi` feature), collected by the router itself
//! ([`crate::app::documented`], `utoipa_axum`), so a route is served only
//! where it is described. What every route shares is added here once: the
//! security schemes, and the error answers of the API key middleware, of a
//! malformed request and of a backend that is down. The whole document is
//! put together in `openapi/document.rs`.
//!
//! Served at `GET /openapi.json`; printed by `herald openapi`; committed as
//! `docs/openapi.json`, which `tests/openapi.rs` compares with this.

mod document;
mod links;
mod operations;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};

use crate::error::ErrorResponse;
use operations::operations_mut;

pub use document::{document, json};

/// The document's fixed parts; the paths come from the router.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Herald server API",
        description = "The HTTP API of a Herald gateway node, for application backends: send messages, publish to topics, read and mark users' inboxes, presence, conversations, preferences, dead webhooks, a user's data. Every node serves all of it; nodes on one Redis share everything. Errors are `{\"error\":{\"code\",\"message\"}}` with the `code`s of `ErrorCode`. `POST /v1/me/requests` is the one route for end users (their token, not an API key): one client frame of the WebSocket protocol (`docs/protocol.md`) in, its reply out.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "messages", description = "Sending: one message, a batch, scheduled sends"),
        (name = "topics", description = "Topic subscriptions and publishing to them (a job per publish)"),
        (name = "inbox", description = "A user's inbox: messages, history, counts, marks, action buttons"),
        (name = "conversations", description = "A user's private conversations"),
        (name = "users", description = "Presence and block lists"),
        (name = "preferences", description = "What reaches a user, and quiet hours"),
        (name = "webhooks", description = "The unread fallback webhooks' dead events"),
        (name = "user data", description = "A user's export and erasure"),
        (name = "client requests", description = "Client frames over HTTP, with the user's own credentials"),
        (name = "health", description = "Probes"),
    ),
    // `ChannelsPatch` is named only by a hand-written schema (a map of
    // nullable patches), so the router does not collect it.
    components(schemas(ErrorResponse, herald_protocol::ChannelsPatch)),
)]
struct Base;

/// The document's start, before the routes are added.
pub fn base() -> OpenApi {
    Base::openapi()
}

pub(crate) fn to_json(doc: &OpenApi) -> String {
    let mut text = links::fix_keys(doc.to_pretty_json().expect("the document serializes"));
    text.push('\n');
    text
}

/// Adds the shared parts to the routes' document.
pub(crate) fn finish(mut doc: OpenApi) -> OpenApi {
    Shared.modify(&mut doc);
    links::add(&mut doc);
    doc
}

/// Security scheme names, as the handlers' annotations spell them.
const API_KEY: &str = "api_key";
const USER_TOKEN: &str = "user_token";
const USER_TOKEN_QUERY: &str = "user_token_query";
const USER_COOKIE: &str = "user_cookie";

/// The shared responses, by name under `components.responses`.
const SHARED: [(&str, &str); 5] = [
    (
        "BadRequest",
        "`bad_request` or `invalid_field`: a path, query or body the route does not take; the message names the field",
    ),
    (
        "Unauthorized",
        "`unauthorized`: no credentials of a scheme the route accepts, or wrong ones",
    ),
    (
        "Forbidden",
        "`unauthorized`: an API key without the scope the route needs",
    ),
    (
        "TooLarge",
        "`bad_request`: a body over the request size limit (2 MB unless the route says less)",
    ),
    (
        "Unavailable",
        "`unavailable`: the backend (Redis) did not answer; retry later",
    ),
];

struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A server API key (`api.key`, `api.keys`) as `Authorization: Bearer <key>`. Each key has scopes: `send` (send, publish, jobs, scheduled sends), `users` (read and act for users), `admin` (everything: dead webhooks, a user's data, and every other scope). An operation lists the scope it needs. No key or a wrong one: 401; a key without the scope: 403.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            USER_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A user's token (`auth`: HS256 with `jwt_secret`, or the keys by `kid`), as `/ws` takes it: `Authorization: Bearer <token>`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            USER_TOKEN_QUERY,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "A user's token in the query, for clients that cannot set a header.",
            ))),
        );
        components.add_security_scheme(
            USER_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "herald_token",
                "A user's token in the cookie `auth.cookie_name` (default `herald_token`), or the web app's session cookie (`auth.session_cookie`); from an `Origin` in `auth.allowed_origins` only (else 403).",
            ))),
        );
        for (name, description) in SHARED {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorResponse")))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content)
                .build();
            components.responses.insert(name.into(), RefOr::T(response));
        }
        for op in operations_mut(doc) {
            add_shared(op);
        }
    }
}

/// The answers an operation gets from what it shares with others.
fn add_shared(op: &mut Operation) {
    let schemes: Vec<String> = op
        .security
        .iter()
        .flatten()
        .flat_map(|requirement| {
            serde_json::to_value(requirement)
                .ok()
                .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
                .unwrap_or_default()
        })
        .collect();
    if schemes.is_empty() {
        return; // the probes
    }
    let has_input = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();
    let mut shared = Vec::new();
    if has_input || has_body {
        shared.push(("400", "BadRequest"));
    }
    shared.push(("401", "Unauthorized"));
    if schemes.iter().any(|s| s == API_KEY) {
        shared.push(("403", "Forbidden"));
    }
    if has_body {
        shared.push(("413", "TooLarge"));
    }
    shared.push(("503", "Unavailable"));
    for (status, name) in shared {
        op.responses
            .responses
            .entry(status.into())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
}
