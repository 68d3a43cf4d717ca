//! Herald's core: what a gateway node does, independent of backend and
//! transport.
//!
//! - [`Store`], [`Broker`] and [`Presence`] are the three backend traits.
//!   [`memory`] implements them in process (the embedded default); the
//!   `herald-redis` crate implements them on Redis.
//! - [`Hub`] holds this node's local connections by user and hands each of
//!   them the deliveries the broker brings.
//! - [`Cursor`] decides, per connection and stream, whether a delivery is new,
//!   a duplicate, or reveals a gap that must be read from the store: this is
//!   what makes delivery exactly-once and in order on every connection.
//!
//! Enable the `testkit` feature for the behavioural suite that every backend
//! must pass.

mod broker;
mod cursor;
mod delivery;
mod error;
mod hub;
pub mod memory;
mod model;
mod presence;
mod store;
mod subscriptions;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use broker::{Broker, BrokerSink};
pub use cursor::{Cursor, Verdict};
pub use delivery::Delivery;
pub use error::{CoreError, Result};
pub use hub::{ConnEvent, ConnHandle, Hub};
pub use model::{validate_user_id, ConnInfo, Draft, Retention, StreamKey, DEFAULT_DEVICE};
pub use presence::Presence;
pub use store::Store;
pub use subscriptions::Subscriptions;

pub use herald_protocol as protocol;
