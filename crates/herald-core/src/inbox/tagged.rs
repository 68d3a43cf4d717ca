//! The unread count of a tags-and-severity filter: the `counts` request
//! (`{"type":"counts","rid":N,"tags":["billing"]}`), answered, never
//! pushed. Unlike the kept counts it is a scan: tags are open-ended, so
//! keeping a number per tag would cost every send a write per tag.

use herald_protocol::Stream;
use time::OffsetDateTime;

use super::{Inbox, PAGE};
use crate::error::Result;
use crate::model::{validate_user_id, StreamKey};
use crate::tag_filter::TagFilter;

impl Inbox {
    /// How many of the user's messages that `filter` keeps count as unread
    /// in `unread_total` (not expired, archived, deleted, snoozed or read,
    /// of a category with a badge), inbox and announcements. O(retained
    /// messages of both streams).
    pub async fn unread_matching(&self, user: &str, filter: &TagFilter) -> Result<u64> {
        validate_user_id(user)?;
        let now = OffsetDateTime::now_utc();
        let (_, state) = self.store.user_counts(user, now).await?;
        let mut unread = 0;
        for stream in Stream::ALL {
            let key = StreamKey::for_user(user, stream);
            let marks = state.marks(stream);
            let mut cursor = 0;
            loop {
                let page = self.store.read_after(&key, cursor, PAGE).await?;
                let Some(last) = page.last().map(|m| m.seq) else {
                    break;
                };
                for m in &page {
                    let badge = self
                        .categories
                        .position(&m.category)
                        .is_some_and(|i| self.categories.at(i).badge);
                    if badge
                        && !m.expired(now)
                        && filter.matches(m)
                        && marks.flags(m.seq).counts_unread()
                    {
                        unread += 1;
                    }
                }
                cursor = last;
            }
        }
        Ok(unread)
    }
}
