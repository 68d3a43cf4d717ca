//! The Herald gateway: one node of the cluster. `docs/architecture.md` is the
//! map; the path of a message is `api::messages::post_messages` → `Store::append` →
//! broker → `Hub` → `connections::connection`.

pub mod admission;
pub mod api;
pub mod api_keys;
pub mod app;
pub mod auth;
pub mod connections;
pub mod conntrack;
pub mod dev;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod openapi;
pub mod rebalance;
pub mod settings;
pub mod webhooks;

pub use node::Node;
pub use settings::Settings;
