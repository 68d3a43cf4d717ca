//! Suite cases for the notification center: marks, counts, history and
//! announcements stored once. They go through [`Inbox`], so they check the
//! core logic and the backend's storage together.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use herald_protocol::{Category, MarkState, Message, StateFilter, Stream, UpTo};

use super::{user, Backend};
use std::time::Duration;

use time::OffsetDateTime;

use crate::{
    Categories, CategorySpec, Draft, HistoryQuery, Inbox, Retention, Selector, Store, StreamKey,
};

fn note(category: Category, body: &str) -> Draft {
    Draft::new(category, body)
}

/// Every retained message of both streams the user sees.
async fn everything(store: &dyn Store, user: &str) -> Vec<Message> {
    let mut all = Vec::new();
    for stream in Stream::ALL {
        let key = StreamKey::for_user(user, stream);
        all.extend(store.read_after(&key, 0, 100_000).await.unwrap());
    }
    all
}

/// The counts worked out the slow way: every message and its flags.
async fn recount(store: &dyn Store, user: &str) -> (BTreeMap<String, u64>, u64) {
    let state = store.read_state(user).await.unwrap();
    let mut unread: BTreeMap<String, u64> = Category::BUILTIN
        .iter()
        .map(|c| (c.as_str().to_owned(), 0))
        .collect();
    let mut unseen = 0;
    let now = OffsetDateTime::now_utc();
    for m in everything(store, user)
        .await
        .into_iter()
        .filter(|m| !m.expired(now))
    {
        let flags = state.marks(m.stream).flags(m.seq);
        if flags.counts_unread() {
            *unread.entry(m.category.to_string()).or_default() += 1;
        }
        unseen += flags.counts_unseen() as u64;
    }
    (unread, unseen)
}

pub(super) async fn assert_counts_match(inbox: &Inbox, store: &dyn Store, user: &str) {
    let counts = inbox.counts(user).await.unwrap().counts();
    let (unread, unseen) = recount(store, user).await;
    assert_eq!(
        counts.unread, unread,
        "kept unread counts differ from a recount"
    );
    assert_eq!(counts.unseen_total, unseen, "kept unseen count differs");
    assert_eq!(counts.unread_total, unread.values().sum::<u64>());
}

async fn setup(b: &dyn Backend) -> (Arc<dyn Store>, Inbox) {
    let store = b.store(Retention::default()).await;
    (store.clone(), Inbox::new(store, Categories::default()))
}

pub async fn marks_by_each_selector(b: &dyn Backend) {
    let (store, inbox) = setup(b).await;
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let mut sent = Vec::new();
    for (i, c) in [
        Category::REMIND,
        Category::REMIND,
        Category::SYSTEM,
        Category::REMIND,
        Category::MAILBOX,
    ]
    .into_iter()
    .enumerate()
    {
        sent.push(store.append(&key, note(c, &format!("m{i}"))).await.unwrap());
    }
    let counts = inbox.counts(&alice).await.unwrap().counts();
    assert_eq!(
        (
            counts.unread["remind"],
            counts.unread_total,
            counts.unseen_total
        ),
        (3, 5, 5)
    );

    // ids: a real change once, then nothing; an unknown id is not counted.
    let ids = Selector::Ids(vec![sent[0].id, uuid::Uuid::now_v7()]);
    assert_eq!(inbox.mark(&alice, MarkState::Read, &ids).await.unwrap(), 1);
    assert_eq!(inbox.mark(&alice, MarkState::Read, &ids).await.unwrap(), 0);
    assert_counts_match(&inbox, &*store, &alice).await;

    // up_to: seen for everything up to seq 3 that was unseen (2 and 3).
    let up_to = Selector::UpTo(UpTo {
        stream: Stream::Inbox,
        seq: 3,
    });
    assert_eq!(
        inbox.mark(&alice, MarkState::Seen, &up_to).await.unwrap(),
        2
    );
    let counts = inbox.counts(&alice).await.unwrap().counts();
    assert_eq!((counts.unread_total, counts.unseen_total), (4, 2));

    // category: the remind messages still unread (seq 2 and 4).
    let remind = Selector::Category(Category::REMIND);
    assert_eq!(
        inbox.mark(&alice, MarkState::Read, &remind).await.unwrap(),
        2
    );
    assert_eq!(
        inbox.counts(&alice).await.unwrap().counts().unread["remind"],
        0
    );
    assert_counts_match(&inbox, &*store, &alice).await;

    // unread brings one back; archived takes it out of counts and history.
    let first = Selector::Ids(vec![sent[0].id]);
    assert_eq!(
        inbox.mark(&alice, MarkState::Unread, &first).await.unwrap(),
        1
    );
    assert_eq!(
        inbox.counts(&alice).await.unwrap().counts().unread["remind"],
        1
    );
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Archived, &first)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        inbox.counts(&alice).await.unwrap().counts().unread["remind"],
        0
    );
    let page = inbox
        .history(&alice, HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 4, "archived left the default history");
    let archived = HistoryQuery {
        state: Some(StateFilter::Archived),
        ..Default::default()
    };
    let page = inbox.history(&alice, archived).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Unarchived, &first)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        inbox.counts(&alice).await.unwrap().counts().unread["remind"],
        1
    );

    // all: read everything; deleted: gone for good.
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Read, &Selector::All)
            .await
            .unwrap(),
        3
    );
    assert_eq!(inbox.counts(&alice).await.unwrap().counts().unread_total, 0);
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Deleted, &first)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        inbox.mark(&alice, MarkState::Unread, &first).await.unwrap(),
        0
    );
    let page = inbox
        .history(&alice, HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 4);
    assert!(page.messages.iter().all(|e| e.message.id != sent[0].id));
    // A later message is unread although "all" was marked before it.
    store
        .append(&key, note(Category::SYSTEM, "late"))
        .await
        .unwrap();
    assert_eq!(
        inbox.counts(&alice).await.unwrap().counts().unread["system"],
        1
    );
    assert_counts_match(&inbox, &*store, &alice).await;
}

pub async fn counts_equal_a_recount_under_concurrent_appends_and_marks(b: &dyn Backend) {
    let (store, inbox) = setup(b).await;
    let inbox = Arc::new(inbox);
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let category = Category::BUILTIN[(t + i) % Category::BUILTIN.len()].clone();
                store.append(&key, note(category, "x")).await.unwrap();
            }
        }));
    }
    let marks = [
        (MarkState::Seen, Selector::All),
        (MarkState::Read, Selector::Category(Category::REMIND)),
        (MarkState::Unread, Selector::All),
        (MarkState::Archived, Selector::Category(Category::SYSTEM)),
        (
            MarkState::Read,
            Selector::UpTo(UpTo {
                stream: Stream::Inbox,
                seq: 40,
            }),
        ),
        (MarkState::Unarchived, Selector::All),
        (MarkState::Deleted, Selector::Category(Category::MAILBOX)),
        (MarkState::Read, Selector::All),
    ];
    for t in 0..2 {
        let (inbox, alice) = (inbox.clone(), alice.clone());
        let marks = marks.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..3 {
                for (mark, selector) in marks.iter().skip((t + round) % 3) {
                    inbox.mark(&alice, *mark, selector).await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_counts_match(&inbox, &*store, &alice).await;
    inbox
        .mark(&alice, MarkState::Unread, &Selector::All)
        .await
        .unwrap();
    assert_counts_match(&inbox, &*store, &alice).await;
}

pub async fn history_pages_without_gap_or_repeat(b: &dyn Backend) {
    let (store, inbox) = setup(b).await;
    let alice = user();
    let mut expected = BTreeSet::new();
    for i in 0..23 {
        let key = if i % 3 == 0 {
            StreamKey::All
        } else {
            StreamKey::inbox(&alice)
        };
        let category = if key == StreamKey::All {
            Category::ANNOUNCEMENT
        } else {
            Category::REMIND
        };
        let m = store
            .append(&key, note(category, &format!("{i}")))
            .await
            .unwrap();
        expected.insert((m.stream.index(), m.seq));
    }
    let mut seen = BTreeSet::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let query = HistoryQuery {
            before: before.clone(),
            limit: Some(4),
            ..Default::default()
        };
        let page = inbox.history(&alice, query).await.unwrap();
        let mut last_ts = None;
        for e in &page.messages {
            assert!(
                seen.insert((e.message.stream.index(), e.message.seq)),
                "repeated"
            );
            assert!(
                last_ts.is_none_or(|t| t >= e.message.ts),
                "not newest first"
            );
            last_ts = Some(e.message.ts);
        }
        pages += 1;
        assert!(pages < 20, "history never ends");
        // A message arriving between pages goes to the top, not into them.
        if pages == 2 {
            store
                .append(&StreamKey::inbox(&alice), note(Category::REMIND, "new"))
                .await
                .unwrap();
        }
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected, "history skipped messages");
    // A filter by category pages the same way.
    let query = HistoryQuery {
        category: Some("announcement".into()),
        limit: Some(200),
        ..Default::default()
    };
    let page = inbox.history(&alice, query).await.unwrap();
    assert_eq!(page.messages.len(), 8);
    assert!(page.next.is_none());
    assert!(inbox
        .history(
            &alice,
            HistoryQuery {
                before: Some("x".into()),
                ..Default::default()
            }
        )
        .await
        .is_err());
}

pub async fn announcements_are_stored_once_with_state_per_user(b: &dyn Backend) {
    let (store, inbox) = setup(b).await;
    let users: Vec<String> = (0..50).map(|_| user()).collect();
    let ann = store
        .append(&StreamKey::All, note(Category::ANNOUNCEMENT, "maintenance"))
        .await
        .unwrap();
    // Unread for every user, including ones who never did anything, with
    // nothing stored per user.
    for u in &users {
        let counts = inbox.counts(u).await.unwrap().counts();
        assert_eq!(counts.unread["announcement"], 1, "{u}");
        assert_eq!(store.read_state(u).await.unwrap().version, 0);
    }
    let (alice, bob) = (&users[0], &users[1]);
    let ids = Selector::Ids(vec![ann.id]);
    assert_eq!(inbox.mark(alice, MarkState::Read, &ids).await.unwrap(), 1);
    assert_eq!(
        inbox.counts(alice).await.unwrap().counts().unread["announcement"],
        0
    );
    assert_eq!(
        inbox.counts(bob).await.unwrap().counts().unread["announcement"],
        1
    );
    let page = inbox.history(alice, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].state, herald_protocol::MessageState::Read);
    // Marking all read folds into a watermark: no exception per message.
    for _ in 0..5 {
        store
            .append(&StreamKey::All, note(Category::ANNOUNCEMENT, "more"))
            .await
            .unwrap();
    }
    assert_eq!(
        inbox
            .mark(bob, MarkState::Read, &Selector::All)
            .await
            .unwrap(),
        6
    );
    let state = store.read_state(bob).await.unwrap();
    assert!(state.marks(Stream::All).exceptions.is_empty());
    assert_eq!(state.marks(Stream::All).read_upto, 6);
    assert_counts_match(&inbox, &*store, bob).await;
}

pub async fn read_state_commits_compare_and_set(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let alice = user();
    let state = store.read_state(&alice).await.unwrap();
    let mut next = state.clone();
    next.marks_mut(Stream::Inbox).raise_read(3);
    let change = crate::ReadChange {
        expect_version: state.version,
        updates: state.diff(&next),
        ..Default::default()
    };
    assert!(store.commit_read_state(&alice, &change).await.unwrap());
    assert!(
        !store.commit_read_state(&alice, &change).await.unwrap(),
        "a stale version must not commit"
    );
    let stored = store.read_state(&alice).await.unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.marks(Stream::Inbox).read_upto, 3);
}

pub async fn retention_keeps_counts_equal_to_a_recount(b: &dyn Backend) {
    let store = b
        .store(Retention {
            max_entries: 3,
            ..Retention::default()
        })
        .await;
    let inbox = Inbox::new(store.clone(), Categories::default());
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let first = store
        .append(&key, note(Category::REMIND, "a"))
        .await
        .unwrap();
    store
        .append(&key, note(Category::SYSTEM, "b"))
        .await
        .unwrap();
    inbox
        .mark(&alice, MarkState::Read, &Selector::Ids(vec![first.id]))
        .await
        .unwrap();
    for i in 0..4 {
        store
            .append(&key, note(Category::REMIND, &format!("{i}")))
            .await
            .unwrap();
    }
    assert_counts_match(&inbox, &*store, &alice).await;
    assert_eq!(inbox.counts(&alice).await.unwrap().counts().unread_total, 3);
    // A later mark forgets the exceptions of messages retention dropped.
    inbox
        .mark(&alice, MarkState::Archived, &Selector::All)
        .await
        .unwrap();
    let (first, _) = store.bounds(&key).await.unwrap();
    let state = store.read_state(&alice).await.unwrap();
    assert!(
        state
            .marks(Stream::Inbox)
            .exceptions
            .keys()
            .all(|&seq| seq >= first),
        "exceptions below the first retained seq {first}: {:?}",
        state.marks(Stream::Inbox).exceptions
    );
}

/// Waits until `check` holds, polling every 20 ms; panics after 5 s.
pub(super) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn marks_on_a_full_inbox_under_traffic_succeed(b: &dyn Backend) {
    let store = b
        .store(Retention {
            max_entries: 5,
            ..Retention::default()
        })
        .await;
    let inbox = Arc::new(Inbox::new(store.clone(), Categories::default()));
    let alice = user();
    let key = StreamKey::inbox(&alice);
    for i in 0..5 {
        store
            .append(&key, note(Category::REMIND, &format!("{i}")))
            .await
            .unwrap();
    }
    // Appends that trim the inbox all along; every mark must still land.
    let appending = tokio::spawn({
        let (store, key) = (store.clone(), key.clone());
        async move {
            for i in 0..200 {
                store
                    .append(&key, note(Category::REMIND, &format!("t{i}")))
                    .await
                    .unwrap();
            }
        }
    });
    for _ in 0..20 {
        inbox
            .mark(&alice, MarkState::Read, &Selector::All)
            .await
            .unwrap();
        inbox
            .mark(&alice, MarkState::Unread, &Selector::All)
            .await
            .unwrap();
    }
    appending.await.unwrap();
    assert_counts_match(&inbox, &*store, &alice).await;
}

mod expiry;
pub use expiry::*;
