//! The conversation side of the store: private messages indexed by sender,
//! each user's conversation list, and the delivered watermark receipts are
//! derived from (the service over it is [`Conversations`](crate::Conversations)).

use async_trait::async_trait;
use herald_protocol::{Message, Receipt};

use crate::error::Result;

/// Most conversations a user's list keeps (the least recently active
/// leave it; their messages stay in the inboxes).
pub const MAX_PEERS: usize = 1_000;
/// Most receipts one acknowledgement pushes (the newest messages).
pub const MAX_RECEIPTS: usize = 100;

/// What the store keeps for conversations (each backend's store implements
/// it next to its [`Store`](super::Store)).
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// Up to `limit` retained private messages `peer` sent `user`, with a
    /// seq below `before` (`None`: from the newest), newest first.
    async fn private_from(
        &self,
        user: &str,
        peer: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>>;

    /// The inbox seqs of the newest `limit` retained private messages
    /// `peer` sent `user`, newest first.
    async fn private_seqs(&self, user: &str, peer: &str, limit: usize) -> Result<Vec<u64>>;

    /// The user's conversations: each peer with its last activity (unix
    /// µs), at most [`MAX_PEERS`], in no particular order.
    async fn peers(&self, user: &str) -> Result<Vec<(String, i64)>>;

    /// Records activity in `user`'s conversation with `peer` at `at_us` —
    /// the sender's side of a private message (its append records the
    /// receiver's).
    async fn touch_peer(&self, user: &str, peer: &str, at_us: i64) -> Result<()>;

    /// The highest inbox seq any device of `user` acknowledged.
    async fn delivered(&self, user: &str) -> Result<u64>;

    /// A device of `user` acknowledged the inbox up to `seq`: moves that
    /// device's cursor (as [`Store::ack`](super::Store::ack): never back,
    /// never past the last seq) and raises
    /// [`ConversationStore::delivered`] with it, in one step; returns the
    /// retained private messages the watermark passed, at most the newest
    /// [`MAX_RECEIPTS`].
    async fn acknowledge_inbox(&self, user: &str, device: &str, seq: u64) -> Result<Vec<Message>>;

    /// Hands `receipt` to every connection of `user`, on every node.
    async fn push_receipt(&self, user: &str, receipt: &Receipt) -> Result<()>;
}
