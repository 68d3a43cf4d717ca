//! Private conversations: the private messages (`mailbox` with a `from`)
//! between two users, both directions, with receipts.
//!
//! Nothing is stored twice. A private message lives in its receiver's
//! inbox, as any message; the append also indexes it by sender (the
//! receiver's per-peer index) and moves the receiver's conversation list.
//! The sender's list is moved by the [`crate::Sender`] alongside the
//! append. A conversation page reads both users' per-peer indexes and
//! merges them by time; a sent message's receipt is derived from what the
//! receiver's side stores — their read state (read) and the highest inbox
//! seq any of their devices acknowledged (delivered) — so a sender who was
//! offline sees receipts in the page. The live `receipt` frames are pushed
//! when that state moves (best effort: the page is the record).

use std::sync::Arc;

use herald_protocol::{
    ConversationSummary, HistoryEntry, Message, MessageState, ReceiptState, Stream,
};
use time::OffsetDateTime;

use crate::backend::Store;
use crate::error::{CoreError, Result};
use crate::model::validate_user_id;
use crate::paging::{
    check_limit, decode_cursor, encode_cursor, merge_newest, newest_kept, HistoryPage,
    MAX_HISTORY_PAGE,
};
use crate::read_state::ReadState;
use crate::receipts::{push_receipts, receipt_of};

/// A conversation's unread number is counted over this many of its newest
/// messages from the peer (so it reads "at least" beyond it).
pub const UNREAD_SCAN: usize = 1_000;
/// Most conversations one `conversations` page lists.
pub const MAX_CONVERSATIONS_PAGE: usize = 100;

/// One page of a user's conversations.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationsPage {
    pub conversations: Vec<ConversationSummary>,
    pub next: Option<String>,
}

/// Conversation lists, pages and receipts, for both transports.
pub struct Conversations {
    store: Arc<dyn Store>,
}

impl Conversations {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Conversations { store }
    }

    /// The user's conversations, the most recently active first, each with
    /// its newest message and its unread number.
    pub async fn list(
        &self,
        user: &str,
        before: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ConversationsPage> {
        validate_user_id(user)?;
        let limit = check_limit(limit, 20, MAX_CONVERSATIONS_PAGE)?;
        let after = before.map(decode_peer_cursor).transpose()?;
        let mut peers = self.store.peers(user).await?;
        peers.sort_by(|a, b| (b.1, &b.0).cmp(&(a.1, &a.0)));
        // Expired messages leave the counts first, as for marks.
        let (_, state) = self
            .store
            .user_counts(user, OffsetDateTime::now_utc())
            .await?;
        let mut conversations: Vec<(ConversationSummary, i64)> = Vec::with_capacity(limit);
        let mut more = false;
        let older = peers
            .iter()
            .filter(|(p, at)| after.as_ref().is_none_or(|(a, ap)| (*at, p) < (*a, ap)));
        for (peer, at) in older {
            if conversations.len() == limit {
                more = true;
                break;
            }
            if let Some(summary) = self.summary(user, peer, &state).await? {
                conversations.push((summary, *at));
            }
        }
        // The cursor names the last listed conversation.
        let next = more.then(|| {
            let (last, at) = conversations.last().expect("a full page");
            encode_peer_cursor(*at, &last.peer)
        });
        Ok(ConversationsPage {
            conversations: conversations.into_iter().map(|(s, _)| s).collect(),
            next,
        })
    }

    /// One conversation of the list; `None` when nothing of it is visible.
    async fn summary(
        &self,
        user: &str,
        peer: &str,
        state: &ReadState,
    ) -> Result<Option<ConversationSummary>> {
        let page = self.page(user, peer, None, Some(1)).await?;
        let Some(last) = page.messages.into_iter().next() else {
            return Ok(None);
        };
        let marks = state.marks(Stream::Inbox);
        let unread = self
            .store
            .private_seqs(user, peer, UNREAD_SCAN)
            .await?
            .into_iter()
            .filter(|&seq| marks.flags(seq).counts_unread())
            .count() as u64;
        Ok(Some(ConversationSummary {
            peer: peer.to_owned(),
            last,
            unread,
        }))
    }

    /// A page of the messages between `user` and `peer`, newest first; each
    /// message `user` sent carries its receipt.
    pub async fn page(
        &self,
        user: &str,
        peer: &str,
        before: Option<&str>,
        limit: Option<usize>,
    ) -> Result<HistoryPage> {
        validate_user_id(user)?;
        validate_user_id(peer).map_err(|e| CoreError::Invalid(format!("peer: {e}")))?;
        let limit = check_limit(limit, 50, MAX_HISTORY_PAGE)?;
        let [mine, theirs] = match before {
            Some(cursor) => decode_cursor(cursor)?,
            None => [None, None],
        };
        let now = OffsetDateTime::now_utc();
        let state = self.store.read_state(user).await?;
        let received = self
            .newest(user, peer, mine, limit, |m| {
                let flags = state.marks(Stream::Inbox).flags(m.seq);
                let public = flags.public().filter(|_| !m.expired(now))?;
                let mut received = entry(m, public, None);
                received.message.acted = state.marks(Stream::Inbox).acted.get(&m.seq).cloned();
                Some(received)
            })
            .await?;
        let peer_state = self.store.read_state(peer).await?;
        let delivered = self.store.delivered(peer).await?;
        let sent = self
            .newest(peer, user, theirs, limit, |m| {
                let receipt = receipt_of(m.seq, &peer_state, delivered);
                (!m.expired(now)).then(|| entry(m, MessageState::Read, Some(receipt)))
            })
            .await?;
        let (messages, next) = merge_newest([received, sent], [mine, theirs], limit);
        Ok(HistoryPage {
            messages,
            next: next.map(encode_cursor),
        })
    }

    /// Up to `limit` private messages `from` sent `to` below `before` that
    /// `keep` keeps, newest first, and whether there is nothing older.
    async fn newest(
        &self,
        to: &str,
        from: &str,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&Message) -> Option<HistoryEntry>,
    ) -> Result<(Vec<HistoryEntry>, bool)> {
        let read = |before| self.store.private_from(to, from, before, limit);
        newest_kept(read, limit, before, limit, &keep).await
    }

    /// `device` of `user` acknowledged the inbox up to `seq`: its cursor
    /// moves, and the senders of the private messages this delivers get
    /// `delivered` receipts.
    pub async fn acknowledged(&self, user: &str, device: &str, seq: u64) -> Result<()> {
        validate_user_id(user)?;
        validate_user_id(device)?;
        let passed = self.store.acknowledge_inbox(user, device, seq).await?;
        let private = passed
            .iter()
            .filter_map(|m| Some((m.from.as_deref()?, m.id)));
        push_receipts(&*self.store, user, ReceiptState::Delivered, private).await;
        Ok(())
    }
}

fn entry(m: &Message, state: MessageState, receipt: Option<ReceiptState>) -> HistoryEntry {
    HistoryEntry {
        until: None,
        message: m.clone(),
        state,
        receipt,
    }
}

/// `<last activity µs>:<peer>` of the last conversation listed.
fn encode_peer_cursor(at: i64, peer: &str) -> String {
    format!("{at}:{peer}")
}

fn decode_peer_cursor(cursor: &str) -> Result<(i64, String)> {
    let bad = || CoreError::Invalid("before: not a cursor this server gave".into());
    let (at, peer) = cursor.split_once(':').ok_or_else(bad)?;
    let at = at.parse().map_err(|_| bad())?;
    validate_user_id(peer).map_err(|_| bad())?;
    Ok((at, peer.to_owned()))
}
