//! Suite cases for tags and severity: stored with the message, filtering
//! history, marks and the `counts` request, and `unread_by_severity` kept
//! exact through every change of state.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{Category, MarkState, Message, Severity, Stream, UnreadBySeverity};
use time::OffsetDateTime;

use super::notification_center::{assert_counts_match, eventually};
use super::{user, Backend};
use crate::{
    unix_ms, Categories, Draft, HistoryQuery, Inbox, Retention, Selector, Store, StreamKey,
    TagFilter,
};

fn labelled(category: Category, severity: Severity, tags: &[&str]) -> Draft {
    let mut draft = Draft::new(category, "x");
    draft.severity = severity;
    draft.tags = tags.iter().map(|t| t.to_string()).collect();
    draft
}

/// `unread_by_severity` the slow way: every retained message and its
/// flags (every built-in category has a badge).
async fn recount(store: &dyn Store, user: &str) -> UnreadBySeverity {
    let state = store.read_state(user).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let mut by = [0u64; 4];
    for stream in Stream::ALL {
        let key = StreamKey::for_user(user, stream);
        for m in store.read_after(&key, 0, 100_000).await.unwrap() {
            if !m.expired(now) && state.marks(m.stream).flags(m.seq).counts_unread() {
                by[m.severity.index()] += 1;
            }
        }
    }
    UnreadBySeverity::from_array(by)
}

/// The kept `unread_by_severity` equals a recount, the four add up to
/// `unread_total`, and the other counts equal theirs; returns them.
async fn assert_severities_match(inbox: &Inbox, store: &dyn Store, user: &str) -> UnreadBySeverity {
    let counts = inbox.counts(user).await.unwrap().counts();
    let by = counts.unread_by_severity;
    assert_eq!(
        by,
        recount(store, user).await,
        "kept severities differ from a recount"
    );
    assert_eq!(
        by.low + by.normal + by.high + by.critical,
        counts.unread_total
    );
    assert_counts_match(inbox, store, user).await;
    by
}

fn sev(low: u64, normal: u64, high: u64, critical: u64) -> UnreadBySeverity {
    UnreadBySeverity {
        low,
        normal,
        high,
        critical,
    }
}

/// Tags and severity are stored and read back as sent; history filters
/// by any of the tags and by severity; "mark all read with tag X" is one
/// mark and leaves the rest; the `counts` request counts a filter's
/// unread.
pub async fn tags_filter_history_marks_and_counts(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let inbox = Inbox::new(store.clone(), Categories::default());
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let billing = store
        .append(
            &key,
            labelled(Category::REMIND, Severity::High, &["billing", "team:42"]),
        )
        .await
        .unwrap();
    let ops = store
        .append(
            &key,
            labelled(Category::SYSTEM, Severity::Critical, &["ops"]),
        )
        .await
        .unwrap();
    let plain = store
        .append(&key, labelled(Category::REMIND, Severity::Normal, &[]))
        .await
        .unwrap();
    let billing_low = store
        .append(
            &key,
            labelled(Category::SYSTEM, Severity::Low, &["billing"]),
        )
        .await
        .unwrap();
    let stored = store.find(&key, &[billing.id]).await.unwrap();
    assert_eq!(stored[0].tags, ["billing", "team:42"]);
    assert_eq!(stored[0].severity, Severity::High);
    assert_eq!(stored, vec![billing.clone()], "stored as returned");
    let filter =
        |tags: Option<&str>, severity: Option<&str>| TagFilter::from_query(tags, severity).unwrap();
    let listed = |f: TagFilter| {
        let inbox = &inbox;
        let alice = &alice;
        async move {
            let query = HistoryQuery {
                filter: f,
                ..Default::default()
            };
            let page = inbox.history(alice, query).await.unwrap();
            page.messages
                .into_iter()
                .map(|e| e.message.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(filter(Some("billing"), None)).await,
        [billing_low.id, billing.id]
    );
    assert_eq!(
        listed(filter(Some("ops,team:42"), None)).await,
        [ops.id, billing.id],
        "any of the tags"
    );
    assert_eq!(listed(filter(None, Some("critical"))).await, [ops.id]);
    assert_eq!(listed(filter(None, Some("normal"))).await, [plain.id]);
    assert_eq!(
        listed(filter(Some("billing"), Some("low"))).await,
        [billing_low.id]
    );
    assert_eq!(listed(TagFilter::default()).await.len(), 4);
    assert_eq!(
        inbox
            .unread_matching(&alice, &filter(Some("billing"), None))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        inbox
            .unread_matching(&alice, &filter(None, Some("high")))
            .await
            .unwrap(),
        1
    );

    // Mark all read with tag billing: one mark, two messages.
    let changed = inbox
        .mark_where(
            &alice,
            MarkState::Read,
            &Selector::All,
            None,
            &filter(Some("billing"), None),
        )
        .await
        .unwrap();
    assert_eq!(changed, 2);
    assert_eq!(
        inbox
            .unread_matching(&alice, &filter(Some("billing"), None))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        inbox
            .unread_matching(&alice, &TagFilter::default())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        assert_severities_match(&inbox, &*store, &alice).await,
        sev(0, 1, 0, 1)
    );
    // A later message with the tag is unread: no watermark moved.
    let later = store
        .append(
            &key,
            labelled(Category::REMIND, Severity::Normal, &["billing"]),
        )
        .await
        .unwrap();
    assert_eq!(
        inbox
            .unread_matching(&alice, &filter(Some("billing"), None))
            .await
            .unwrap(),
        1
    );
    // By severity, with a category selector; and ids the filter skips.
    let changed = inbox
        .mark_where(
            &alice,
            MarkState::Archived,
            &Selector::Category(Category::SYSTEM),
            None,
            &filter(None, Some("critical")),
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let skipped = inbox
        .mark_where(
            &alice,
            MarkState::Read,
            &Selector::Ids(vec![plain.id, later.id]),
            None,
            &filter(Some("ops"), None),
        )
        .await
        .unwrap();
    assert_eq!(skipped, 0, "neither has the tag");
    assert_eq!(
        assert_severities_match(&inbox, &*store, &alice).await,
        sev(0, 2, 0, 0)
    );
}

mod severity;
pub use severity::*;
