//! The conversation side of the Redis store ([`ConversationStore`]): reads
//! of the per-peer indexes the append writes, the conversation lists, the
//! inbox `ack` with the delivered watermark, and receipts on the user's
//! channel. Key layout in
//! `keys.rs`; every key is the user's, so each call is one slot.

use async_trait::async_trait;
use bytes::Bytes;
use fred::interfaces::{KeysInterface, PubsubInterface, SortedSetsInterface};
use fred::prelude::Value;
use herald_core::{ConversationStore, Result, StreamKey, MAX_RECEIPTS};
use herald_protocol::{Message, Receipt, Stream};

use super::{decode_entry, RedisStore};
use crate::batch::PendingAppend;
use crate::broker::encode_receipt;
use crate::unavailable;

impl RedisStore {
    /// The inbox keys of `user` followed by `extra`.
    fn inbox_keys_and(&self, user: &str, extra: String) -> Vec<String> {
        let mut keys = self.stream_keys(&StreamKey::inbox(user));
        keys.push(extra);
        keys
    }

    async fn private_index(
        &self,
        user: &str,
        peer: &str,
        before: Option<u64>,
        limit: usize,
        mode: &str,
    ) -> Result<Value> {
        herald_core::validate_user_id(user)?;
        herald_core::validate_user_id(peer)?;
        let keys = self.inbox_keys_and(user, self.shared.keys.private_from(user, peer));
        let before = before.map_or(String::new(), |b| b.to_string());
        let args: Vec<Value> = vec![
            before.into(),
            Value::from(limit.min(i64::MAX as usize) as i64),
            self.max_age_ms().into(),
            mode.into(),
        ];
        self.shared
            .scripts
            .private_from
            .run(self.shared.pool.next(), keys, args)
            .await
    }
}

fn decode_entries(value: Value) -> Result<Vec<Message>> {
    let entries: Vec<Bytes> = value.convert().map_err(unavailable)?;
    entries.iter().map(|e| decode_entry(e)).collect()
}

#[async_trait]
impl ConversationStore for RedisStore {
    async fn private_from(
        &self,
        user: &str,
        peer: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        decode_entries(self.private_index(user, peer, before, limit, "m").await?)
    }

    async fn private_seqs(&self, user: &str, peer: &str, limit: usize) -> Result<Vec<u64>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let seqs = self.private_index(user, peer, None, limit, "s").await?;
        seqs.convert().map_err(unavailable)
    }

    async fn peers(&self, user: &str) -> Result<Vec<(String, i64)>> {
        herald_core::validate_user_id(user)?;
        let peers: Vec<(String, f64)> = self
            .shared
            .pool
            .zrange(self.shared.keys.peers(user), 0, -1, None, false, None, true)
            .await
            .map_err(unavailable)?;
        Ok(peers.into_iter().map(|(p, at)| (p, at as i64)).collect())
    }

    /// Queued with the appends (see `batch.rs`): a private message's two
    /// sides go out together instead of in a script call each. Off a
    /// Cluster the touch rides the lane of the peer's keys, where the
    /// private message's append to the peer is queued.
    async fn touch_peer(&self, user: &str, peer: &str, at_us: i64) -> Result<()> {
        herald_core::validate_user_id(user)?;
        let prefix = self.shared.keys.user_prefix(user);
        let slot = fred::util::redis_keyslot(prefix.as_bytes());
        // On a Cluster a touch goes to its own slot: the peer's is unused.
        let lane_slot = if self.shared.sharded {
            slot
        } else {
            fred::util::redis_keyslot(self.shared.keys.user_prefix(peer).as_bytes())
        };
        self.batcher
            .append(PendingAppend::touch_peer(
                slot,
                lane_slot,
                prefix,
                peer.to_owned(),
                at_us,
            ))
            .await?;
        Ok(())
    }

    async fn delivered(&self, user: &str) -> Result<u64> {
        herald_core::validate_user_id(user)?;
        let seq: Option<u64> = self
            .shared
            .pool
            .get(self.shared.keys.delivered(user))
            .await
            .map_err(unavailable)?;
        Ok(seq.unwrap_or(0))
    }

    async fn acknowledge_inbox(&self, user: &str, device: &str, seq: u64) -> Result<Vec<Message>> {
        herald_core::validate_user_id(user)?;
        herald_core::validate_user_id(device)?;
        let mut keys = self.inbox_keys_and(user, self.shared.keys.delivered(user));
        keys.push(self.shared.keys.cursor(user, Stream::Inbox, device));
        let args: Vec<Value> = vec![
            Value::from(seq.min(i64::MAX as u64) as i64),
            Value::from(MAX_RECEIPTS as i64),
            self.max_age_ms().into(),
        ];
        let entries: Value = self
            .shared
            .scripts
            .ack_inbox
            .run(self.shared.pool.next(), keys, args)
            .await?;
        let mut passed: Vec<Message> = decode_entries(entries)?
            .into_iter()
            .filter(|m| m.from.is_some())
            .collect();
        passed.reverse();
        Ok(passed)
    }

    async fn push_receipt(&self, user: &str, receipt: &Receipt) -> Result<()> {
        let channel = self.shared.keys.channel(&StreamKey::inbox(user));
        let payload = Value::Bytes(encode_receipt(receipt)?);
        let client = self.shared.pool.next();
        let _: i64 = if self.shared.sharded {
            client.spublish(channel, payload).await
        } else {
            client.publish(channel, payload).await
        }
        .map_err(unavailable)?;
        Ok(())
    }
}
