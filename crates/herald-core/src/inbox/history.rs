//! History: a page of a user's inbox and announcements merged, newest
//! first, with a cursor per stream.

use herald_protocol::{HistoryEntry, Message, StateFilter, Stream};
use time::OffsetDateTime;

use super::{Inbox, PAGE};
use crate::error::Result;
use crate::model::{validate_user_id, StreamKey};
use crate::paging::{
    check_limit, decode_cursor, encode_cursor, merge_newest, newest_kept, HistoryPage,
    MAX_HISTORY_PAGE,
};
use crate::read_state::{Flags, Level};
use crate::tag_filter::TagFilter;

/// What a history page lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub category: Option<String>,
    pub state: Option<StateFilter>,
    pub before: Option<String>,
    pub limit: Option<usize>,
    /// The snoozed messages only (they are left out otherwise).
    pub snoozed: bool,
    /// Only messages with any of its tags and of its severity.
    pub filter: TagFilter,
}

impl Inbox {
    /// A page of the user's inbox and announcements merged, newest first.
    /// The cursor holds a position per stream, so pages never skip or
    /// repeat a message whatever arrives meanwhile.
    pub async fn history(&self, user: &str, query: HistoryQuery) -> Result<HistoryPage> {
        validate_user_id(user)?;
        let limit = check_limit(query.limit, 50, MAX_HISTORY_PAGE)?;
        let category = match query.category.as_deref() {
            Some(name) => Some(self.categories.get(name)?.category.clone()),
            None => None,
        };
        let before = match &query.before {
            Some(cursor) => decode_cursor(cursor)?,
            None => [None; Stream::ALL.len()],
        };
        let state = self.store.read_state(user).await?;
        let now = OffsetDateTime::now_utc();
        let keep = |m: &Message| -> Option<HistoryEntry> {
            let flags = state.marks(m.stream).flags(m.seq);
            let public = flags.public()?;
            if m.expired(now)
                || category.as_ref().is_some_and(|c| c != &m.category)
                || !query.filter.matches(m)
                || !state_matches(query.state, query.snoozed, flags)
            {
                return None;
            }
            let mut message = m.clone();
            message.acted = state.marks(m.stream).acted.get(&m.seq).cloned();
            Some(HistoryEntry {
                message,
                state: public,
                receipt: None,
                until: state.marks(m.stream).snoozed.get(&m.seq).copied(),
            })
        };
        // Up to `limit` matches from each stream, newest first.
        let mut lists = Vec::new();
        for stream in Stream::ALL {
            let key = StreamKey::for_user(user, stream);
            lists.push(
                self.newest(&key, before[stream.index()], limit, &keep)
                    .await?,
            );
        }
        let lists: [_; 2] = lists.try_into().expect("two streams");
        let (messages, next) = merge_newest(lists, before, limit);
        Ok(HistoryPage {
            messages,
            next: next.map(encode_cursor),
        })
    }

    /// Up to `limit` entries of `key` below `before` that `keep` keeps,
    /// newest first, and whether the stream has nothing older.
    async fn newest(
        &self,
        key: &StreamKey,
        before: Option<u64>,
        limit: usize,
        keep: &impl Fn(&Message) -> Option<HistoryEntry>,
    ) -> Result<(Vec<HistoryEntry>, bool)> {
        let read = |before| self.store.read_before(key, before, PAGE);
        newest_kept(read, PAGE, before, limit, keep).await
    }
}

fn state_matches(filter: Option<StateFilter>, snoozed: bool, flags: Flags) -> bool {
    if snoozed || flags.snoozed {
        return snoozed && flags.snoozed;
    }
    match filter {
        None => !flags.archived,
        Some(StateFilter::Archived) => flags.archived,
        Some(StateFilter::Unread) => !flags.archived && flags.level < Level::Read,
        Some(StateFilter::Read) => !flags.archived && flags.level == Level::Read,
    }
}
