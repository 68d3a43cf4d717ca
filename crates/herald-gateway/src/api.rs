//! The server API for application backends: a file per group of routes
//! (the OpenAPI document's tags). JSON in and out, `Authorization: Bearer
//! <api key>`.

// Public so that `utoipa_axum::routes!` in `app.rs` finds each handler's
// generated `__path_*` item beside it.
pub mod blocks;
pub mod conversations;
pub mod fanout;
pub mod inbox;
mod json_body;
pub mod messages;
pub mod preferences;
pub mod presence;
pub mod scheduled;
pub mod topics;
pub mod user_data;
pub mod webhooks;

pub use messages::{SendRequest, MAX_BATCH_MESSAGES};
pub use preferences::MAX_PREFERENCES_BODY;
pub use scheduled::SendView;
pub use user_data::ErasedView;
