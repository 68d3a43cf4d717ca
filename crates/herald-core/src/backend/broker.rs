//! The broker: moves stored messages to the nodes that hold their receivers.

use std::sync::Arc;

use async_trait::async_trait;

use crate::delivery::Delivery;
use crate::error::Result;

/// Where a broker hands what it receives. The [`crate::Hub`] is the sink of a
/// gateway node.
pub trait BrokerSink: Send + Sync + 'static {
    /// A message of a user's inbox or of the `all` stream arrived.
    fn deliver(&self, delivery: Arc<Delivery>);

    /// The broker lost its link and got it back: anything may have been
    /// missed, so every local connection should check the store for gaps.
    fn resync(&self);

    /// A mark changed `user`'s read state: their connections read the
    /// counts again.
    fn counts_changed(&self, user: &str);

    /// A private message `user` sent was delivered or read.
    fn receipt(&self, user: &str, receipt: &herald_protocol::Receipt);

    /// `user`'s preferences changed: what they set now (their connections
    /// fill in the defaults and push a `preferences` frame). Ignored by
    /// default: a sink without connections has nobody to tell.
    fn preferences(&self, user: &str, stored: &crate::backend::StoredPreferences) {
        let _ = (user, stored);
    }

    /// Messages of `user` changed state by the server's doing (snoozes
    /// that ended), which also changed the counts: their connections write
    /// the `changed` frame, then read the counts again. A sink that has no
    /// use for the frame takes it as a counts change.
    fn changed(&self, user: &str, changed: &herald_protocol::Changed) {
        let _ = changed;
        self.counts_changed(user);
    }

    /// `user`'s data was erased ([`Store::erase_user`](super::Store::erase_user)):
    /// their connections close (4003). Ignored by default: a sink without
    /// connections has nobody to close.
    fn erased(&self, user: &str) {
        let _ = user;
    }
}

/// Per-user channels plus one broadcast channel.
///
/// Publishing is done by [`Store::append`](super::Store::append) (atomically with the
/// append); the broker only decides which users' channels this node listens
/// to. The `all` stream is always listened to.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Starts listening to these users' channels. When this returns Ok, every
    /// message appended afterwards reaches the sink.
    async fn subscribe(&self, users: &[String]) -> Result<()>;

    /// Stops listening to these users' channels.
    async fn unsubscribe(&self, users: &[String]) -> Result<()>;
}
