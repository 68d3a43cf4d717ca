//! The user's side of the notification center: mark, counts, history.
//! Both transports call these; the backends only store (see
//! [`crate::read_state`] for how marks are kept).

use std::sync::Arc;

use herald_protocol::{Category, MarkSelector, MarkState, Message, ReceiptState, Stream, UpTo};
use uuid::Uuid;

use time::OffsetDateTime;

use crate::backend::{Store, Timers, WebhookQueue};
use crate::categories::Categories;
use crate::error::{CoreError, Result};
use crate::model::{validate_user_id, StreamKey};
use crate::read_state::{CountDelta, Flags, Level, ReadChange, ReadState};
use crate::receipts::push_receipts;
use crate::tag_filter::TagFilter;

mod act;
mod counts;
mod history;
mod snooze;
mod tagged;
mod until;

pub use act::Acted;
pub use counts::CountsSnapshot;
pub use history::HistoryQuery;
pub use snooze::Woken;

/// Messages read from the store per call while scanning.
const PAGE: usize = 256;
/// A mark that keeps losing its compare-and-set gives up after this many
/// tries (someone is marking in a tight loop).
pub(crate) const MARK_TRIES: usize = 16;
/// Most ids one mark may name.
pub const MAX_MARK_IDS: usize = 1_000;
/// Most messages of one conversation a `peer` mark reaches (the newest).
const MAX_MARK_PEER: usize = 10_000;

/// Which messages a mark applies to (exactly one selector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Ids(Vec<Uuid>),
    UpTo(UpTo),
    Category(Category),
    All,
    /// The private messages this peer sent the user (a conversation).
    Peer(String),
}

impl Selector {
    /// Checks that the wire form names exactly one selector (and a known
    /// category).
    pub fn from_wire(wire: MarkSelector, categories: &Categories) -> Result<Selector> {
        let given = wire.ids.is_some() as u8
            + wire.up_to.is_some() as u8
            + wire.category.is_some() as u8
            + wire.all.is_some() as u8
            + wire.peer.is_some() as u8;
        if given != 1 {
            return Err(CoreError::Invalid(
                "mark: give exactly one of ids, up_to, category, all, peer".into(),
            ));
        }
        if let Some(peer) = wire.peer {
            validate_user_id(&peer).map_err(|e| CoreError::Invalid(format!("peer: {e}")))?;
            return Ok(Selector::Peer(peer));
        }
        if let Some(ids) = wire.ids {
            if ids.is_empty() || ids.len() > MAX_MARK_IDS {
                return Err(CoreError::Invalid(format!(
                    "ids: must list 1 to {MAX_MARK_IDS} ids"
                )));
            }
            return Ok(Selector::Ids(ids));
        }
        if let Some(up_to) = wire.up_to {
            return Ok(Selector::UpTo(up_to));
        }
        if let Some(category) = wire.category {
            return Ok(Selector::Category(
                categories.get(&category)?.category.clone(),
            ));
        }
        match wire.all {
            Some(true) => Ok(Selector::All),
            _ => Err(CoreError::Invalid("all: must be true".into())),
        }
    }
}

/// Marks, counts and history of users' messages.
pub struct Inbox {
    store: Arc<dyn Store>,
    categories: Categories,
    /// Where snoozes register their wake-ups (see [`Inbox::with_wakes`]).
    wakes: Option<Arc<dyn Timers>>,
    /// Where acts arm their `message.action` webhook events (see
    /// [`Inbox::with_action_webhooks`]).
    action_hooks: Option<Arc<dyn WebhookQueue>>,
}

impl Inbox {
    pub fn new(store: Arc<dyn Store>, categories: Categories) -> Self {
        Inbox {
            store,
            categories,
            wakes: None,
            action_hooks: None,
        }
    }

    /// Arms a `message.action` webhook event in `queue` for each act (the
    /// node's [`Webhooks`](crate::Webhooks) worker sends it). Without, an
    /// act raises no webhook.
    pub fn with_action_webhooks(mut self, queue: Arc<dyn WebhookQueue>) -> Self {
        self.action_hooks = Some(queue);
        self
    }

    /// Registers each snooze's wake-up with `timers`, where a node's
    /// [`Scheduler`](crate::Scheduler) finds it when due. Without, a
    /// snooze ends only when the user's counts are next read after it is
    /// due.
    pub fn with_wakes(mut self, timers: Arc<dyn Timers>) -> Self {
        self.wakes = Some(timers);
        self
    }

    pub fn categories(&self) -> &Categories {
        &self.categories
    }

    /// Applies `mark` to the messages `selector` picks; returns how many
    /// really changed state. Ids the user cannot see are not counted. The
    /// senders of private messages this made read get `read` receipts.
    pub async fn mark(&self, user: &str, mark: MarkState, selector: &Selector) -> Result<u64> {
        self.mark_until(user, mark, selector, None).await
    }

    /// [`Inbox::mark`], with the `until` (unix ms) a `snoozed` mark needs
    /// and no other takes: it must lie ahead, by at most a year (366
    /// days). Snoozing a snoozed message again moves its wake-up.
    pub async fn mark_until(
        &self,
        user: &str,
        mark: MarkState,
        selector: &Selector,
        until: Option<i64>,
    ) -> Result<u64> {
        self.mark_where(user, mark, selector, until, &TagFilter::default())
            .await
    }

    /// [`Inbox::mark_until`] of only the selected messages that `filter`
    /// keeps: "mark all read with tag X" is one call (`Selector::All`).
    pub async fn mark_where(
        &self,
        user: &str,
        mark: MarkState,
        selector: &Selector,
        until: Option<i64>,
        filter: &TagFilter,
    ) -> Result<u64> {
        validate_user_id(user)?;
        let until = until::check_until(mark, until)?;
        self.mark_once(user, mark, selector, until, filter).await
    }

    /// The mark's compare-and-set loop; returns how many messages changed.
    ///
    /// A try that snoozes anything (changed or not: a retried snooze
    /// registers its wake-up again) records the wake-up BEFORE its commit:
    /// a node that dies between the two leaves at worst a wake-up that
    /// finds nothing due (a no-op), never a committed snooze without one.
    /// Each try records it again after its read, so a waker that claimed
    /// the user and read the state before this commit cannot drop it: its
    /// own commit (a bare version bump when it found nothing due, see
    /// `Inbox::wake`) makes this try's compare-and-set fail, and the next
    /// try records it while the claim holds the user (kept for the claim's
    /// end, see `Timers::wake_at`) or after it ended.
    async fn mark_once(
        &self,
        user: &str,
        mark: MarkState,
        selector: &Selector,
        until: Option<i64>,
        filter: &TagFilter,
    ) -> Result<u64> {
        for _ in 0..MARK_TRIES {
            let mut snoozed = false;
            let mut read_private = Vec::new();
            // Expire first, with the same `now` the candidates are filtered
            // by: a message expired by `now` has left the counts already, and
            // one expiring later is marked like any other (its expiry then
            // un-counts it by its new flags).
            let now = OffsetDateTime::now_utc();
            let (_, state) = self.store.user_counts(user, now).await?;
            let mut next = state.clone();
            let mut change = ReadChange {
                expect_version: state.version,
                ..ReadChange::default()
            };
            let mut changed = 0;
            for stream in Stream::ALL {
                let key = StreamKey::for_user(user, stream);
                let (candidates, prefix) = self
                    .candidates(&key, &state, mark, selector, filter)
                    .await?;
                // An expired message is gone: nothing to mark, nothing to
                // count. One the store has not un-counted yet (its expiry
                // index is read at ms precision, or its append landed after
                // `user_counts`) keeps its flags through a watermark raise
                // below, so that its expiry un-counts it by them.
                let mut untaken = Vec::new();
                for message in candidates {
                    if message.expired(now) {
                        let flags = next.marks(stream).flags(message.seq);
                        if !flags.expired {
                            untaken.push((message.seq, flags));
                        }
                        continue;
                    }
                    let old = next.marks(stream).flags(message.seq);
                    let new = old.apply(mark);
                    if let (Some(until), true) = (until, new.snoozed) {
                        snoozed = true;
                        let marks = next.marks_mut(stream);
                        if new == old && marks.snoozed.get(&message.seq) == Some(&until) {
                            continue;
                        }
                        changed += 1;
                        if stream == Stream::Inbox {
                            change.deltas.extend(count_delta(&message, old, new));
                        }
                        marks.snooze(message.seq, new, until);
                        continue;
                    }
                    if new == old {
                        continue;
                    }
                    changed += 1;
                    if stream == Stream::Inbox {
                        change.deltas.extend(count_delta(&message, old, new));
                        if let Some(sender) = newly_read_private(&message, old, new) {
                            read_private.push((sender, message.id));
                        }
                    }
                    next.marks_mut(stream).set(message.seq, new);
                }
                // Everything up to `prefix` now has the mark: fold it into
                // the watermark instead of keeping an exception each.
                if let Some(upto) = prefix {
                    match mark {
                        MarkState::Read => next.marks_mut(stream).raise_read(upto),
                        MarkState::Seen => next.marks_mut(stream).raise_seen(upto),
                        _ => {}
                    }
                }
                for (seq, flags) in untaken {
                    next.marks_mut(stream).set(seq, flags);
                }
                // Exceptions of messages retention dropped are forgotten
                // (their marks can never matter again).
                if state.marks(stream).exceptions.keys().next().is_some() {
                    let (first, _) = self.store.bounds(&key).await?;
                    next.marks_mut(stream).forget_below(first);
                }
            }
            change.updates = state.diff(&next);
            if let (Some(until), true, Some(wakes)) = (until, snoozed, &self.wakes) {
                wakes.wake_at(user, until).await?;
            }
            if change.is_empty() || self.store.commit_read_state(user, &change).await? {
                let senders = read_private.iter().map(|(s, id)| (s.as_str(), *id));
                push_receipts(&*self.store, user, ReceiptState::Read, senders).await;
                return Ok(changed);
            }
        }
        Err(CoreError::Unavailable(
            "mark: the read state kept changing; retry".into(),
        ))
    }

    /// The messages of `key` a mark may change, and for `up_to`/`all` the
    /// seq up to which every message now has the mark (read and seen only:
    /// the watermarks).
    async fn candidates(
        &self,
        key: &StreamKey,
        state: &ReadState,
        mark: MarkState,
        selector: &Selector,
        filter: &TagFilter,
    ) -> Result<(Vec<Message>, Option<u64>)> {
        let stream = key.stream();
        let marks = state.marks(stream);
        // Below its watermark a read/seen mark changes only exceptions.
        let watermark = match mark {
            MarkState::Read => Some(marks.read_upto),
            MarkState::Seen => Some(marks.seen_upto.max(marks.read_upto)),
            _ => None,
        };
        let (upto, category) = match selector {
            Selector::Ids(ids) => {
                let mut found = self.store.find(key, ids).await?;
                found.retain(|m| filter.matches(m));
                return Ok((found, None));
            }
            Selector::Peer(peer) => {
                let Some(user) = key.user() else {
                    return Ok((Vec::new(), None));
                };
                let mut found = self
                    .store
                    .private_from(user, peer, None, MAX_MARK_PEER)
                    .await?;
                found.retain(|m| filter.matches(m));
                return Ok((found, None));
            }
            Selector::UpTo(u) if u.stream != stream => return Ok((Vec::new(), None)),
            Selector::UpTo(u) => (u.seq, None),
            Selector::Category(c) => (u64::MAX, Some(c)),
            Selector::All => (u64::MAX, None),
        };
        let wanted = |m: &Message| {
            m.seq <= upto && category.is_none_or(|c| &m.category == c) && filter.matches(m)
        };
        let mut found = Vec::new();
        let start = watermark.unwrap_or(0);
        if let Some(watermark) = watermark {
            let level = if mark == MarkState::Read {
                Level::Read
            } else {
                Level::Seen
            };
            for (&seq, flags) in marks.exceptions.range(..=watermark.min(upto)) {
                // A snoozed message below the watermark may be read: that
                // ends its snooze.
                if flags.level < level || (flags.snoozed && mark == MarkState::Read) {
                    found.extend(
                        self.store
                            .read_after(key, seq - 1, 1)
                            .await?
                            .into_iter()
                            .filter(|m| m.seq == seq && wanted(m)),
                    );
                }
            }
        }
        let last = self.scan(key, start, upto, &mut found, wanted).await?;
        // A filtered mark leaves the messages it skips as they were, so
        // only an unfiltered one moves a watermark.
        let whole = category.is_none() && filter.is_empty();
        let prefix = (whole && watermark.is_some() && last > start).then_some(last);
        Ok((found, prefix))
    }

    /// Collects the messages of `key` after `after`, up to `upto`, that
    /// `wanted` keeps; returns the last seq looked at.
    async fn scan(
        &self,
        key: &StreamKey,
        after: u64,
        upto: u64,
        found: &mut Vec<Message>,
        wanted: impl Fn(&Message) -> bool,
    ) -> Result<u64> {
        let mut cursor = after;
        loop {
            let page = self.store.read_after(key, cursor, PAGE).await?;
            let Some(last) = page.last().map(|m| m.seq) else {
                return Ok(cursor);
            };
            for message in page {
                if message.seq > upto {
                    return Ok(cursor);
                }
                cursor = message.seq;
                if wanted(&message) {
                    found.push(message);
                }
            }
            cursor = cursor.max(last);
        }
    }
}

/// The sender of a private message that this change made read.
fn newly_read_private(message: &Message, old: Flags, new: Flags) -> Option<String> {
    let private = message.category == Category::MAILBOX;
    let read = old.level < Level::Read && new.level == Level::Read;
    (private && read).then(|| message.from.clone()).flatten()
}

/// What a state change of one inbox message does to the kept counts.
fn count_delta(message: &Message, old: Flags, new: Flags) -> Option<CountDelta> {
    let unread = new.counts_unread() as i64 - old.counts_unread() as i64;
    let unseen = new.counts_unseen() as i64 - old.counts_unseen() as i64;
    (unread != 0 || unseen != 0).then(|| CountDelta {
        seq: message.seq,
        category: message.category.to_string(),
        unread,
        unseen,
        severity: message.severity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_is_exactly_one() {
        let c = Categories::default();
        let none = MarkSelector::default();
        assert!(Selector::from_wire(none, &c).is_err());
        let two = MarkSelector {
            all: Some(true),
            category: Some("remind".into()),
            ..Default::default()
        };
        assert!(Selector::from_wire(two, &c).is_err());
        let bad = MarkSelector {
            category: Some("nope".into()),
            ..Default::default()
        };
        assert!(Selector::from_wire(bad, &c).is_err());
        let all = MarkSelector {
            all: Some(true),
            ..Default::default()
        };
        assert_eq!(Selector::from_wire(all, &c).unwrap(), Selector::All);
    }
}
