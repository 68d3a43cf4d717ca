//! The whole document: the router's routes and the parts they share. Not
//! in `openapi.rs`, because the router (`app.rs`) starts from that file's
//! base: this one sits above both.

use std::sync::Arc;

use utoipa::openapi::OpenApi;

use super::{finish, to_json};
use crate::api_keys::{ApiKeys, CurrentKeys};
use crate::app;
use crate::settings::ApiSettings;

/// The whole document: the routes of [`app::documented`] (built with no
/// API key: the keys change who passes, not what is described) and what
/// they share.
pub fn document() -> OpenApi {
    let keys: Arc<CurrentKeys> = Arc::new(arc_swap::ArcSwap::from_pointee(
        ApiKeys::new(&ApiSettings::default()).expect("no keys are valid settings"),
    ));
    let (_, doc) = app::documented(keys).split_for_parts();
    finish(doc)
}

/// The document as `GET /openapi.json` serves it and `docs/openapi.json`
/// holds it: pretty JSON, ending with a newline.
pub fn json() -> String {
    to_json(&document())
}
