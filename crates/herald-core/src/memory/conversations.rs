//! The conversation side of the in-memory store: per-peer indexes of
//! private messages, conversation lists and delivered watermarks, in the
//! store's state (so the append indexes under the same lock).

use std::collections::HashMap;

use async_trait::async_trait;
use herald_protocol::{Category, Message, Receipt, Stream};
use time::OffsetDateTime;

use super::store::{MemoryStore, State};
use crate::backend::{ConversationStore, MAX_PEERS, MAX_RECEIPTS};
use crate::error::Result;
use crate::model::StreamKey;

impl State {
    /// Indexes a private message just appended to `user`'s inbox and moves
    /// the conversation to the top of the user's list.
    pub(super) fn index_private(&mut self, user: &str, message: &Message) {
        let Some(from) = message.from.as_deref() else {
            return;
        };
        if message.category != Category::MAILBOX {
            return;
        }
        self.private
            .entry((user.to_owned(), from.to_owned()))
            .or_default()
            .insert(message.seq);
        touch(
            &mut self.peers,
            user,
            from,
            unix_us(OffsetDateTime::now_utc()),
        );
    }

    /// The retained seqs of `peer`'s private messages to `user`, newest
    /// first (forgetting those retention dropped).
    fn private_seqs(&mut self, user: &str, peer: &str) -> Vec<u64> {
        let first = self
            .logs
            .get(&StreamKey::inbox(user))
            .map_or(u64::MAX, |l| l.first_seq());
        let Some(seqs) = self.private.get_mut(&(user.to_owned(), peer.to_owned())) else {
            return Vec::new();
        };
        seqs.retain(|&s| s >= first);
        seqs.iter().rev().copied().collect()
    }
}

fn unix_us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// Records activity, keeping the [`MAX_PEERS`] most recent conversations.
fn touch(peers: &mut HashMap<String, HashMap<String, i64>>, user: &str, peer: &str, at: i64) {
    let list = peers.entry(user.to_owned()).or_default();
    let last = list.entry(peer.to_owned()).or_insert(at);
    *last = (*last).max(at);
    if list.len() > MAX_PEERS {
        if let Some(oldest) = list
            .iter()
            .min_by_key(|(p, at)| (**at, (*p).clone()))
            .map(|(p, _)| p.clone())
        {
            list.remove(&oldest);
        }
    }
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn private_from(
        &self,
        user: &str,
        peer: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut state = self.state.lock().unwrap();
        let seqs = state.private_seqs(user, peer);
        let Some(log) = state.logs.get(&StreamKey::inbox(user)) else {
            return Ok(Vec::new());
        };
        Ok(seqs
            .into_iter()
            .filter(|&s| before.is_none_or(|b| s < b))
            .filter_map(|s| log.get(s).cloned())
            .take(limit)
            .collect())
    }

    async fn private_seqs(&self, user: &str, peer: &str, limit: usize) -> Result<Vec<u64>> {
        let mut seqs = self.state.lock().unwrap().private_seqs(user, peer);
        seqs.truncate(limit);
        Ok(seqs)
    }

    async fn peers(&self, user: &str) -> Result<Vec<(String, i64)>> {
        let state = self.state.lock().unwrap();
        Ok(state
            .peers
            .get(user)
            .map(|l| l.iter().map(|(p, at)| (p.clone(), *at)).collect())
            .unwrap_or_default())
    }

    async fn touch_peer(&self, user: &str, peer: &str, at_us: i64) -> Result<()> {
        touch(&mut self.state.lock().unwrap().peers, user, peer, at_us);
        Ok(())
    }

    async fn delivered(&self, user: &str) -> Result<u64> {
        let state = self.state.lock().unwrap();
        Ok(state.delivered.get(user).copied().unwrap_or(0))
    }

    async fn acknowledge_inbox(&self, user: &str, device: &str, seq: u64) -> Result<Vec<Message>> {
        let mut state = self.state.lock().unwrap();
        state.ack(user, device, Stream::Inbox, seq);
        let Some(log) = state.logs.get(&StreamKey::inbox(user)) else {
            return Ok(Vec::new());
        };
        let seq = seq.min(log.last_seq);
        let old = state.delivered.get(user).copied().unwrap_or(0);
        if seq <= old {
            return Ok(Vec::new());
        }
        let lowest = (old + 1).max(log.first_seq());
        let mut passed: Vec<Message> = (lowest..=seq)
            .rev()
            .filter_map(|s| log.get(s))
            .filter(|m| m.category == Category::MAILBOX && m.from.is_some())
            .take(MAX_RECEIPTS)
            .cloned()
            .collect();
        passed.reverse();
        state.delivered.insert(user.to_owned(), seq);
        Ok(passed)
    }

    async fn push_receipt(&self, user: &str, receipt: &Receipt) -> Result<()> {
        self.bus.publish_receipt(user, receipt);
        Ok(())
    }
}
