//! Suite cases for messages that expire: they leave counts, history and
//! marks once, and a category without a badge is listed, not totalled.

use super::*;

pub async fn expired_messages_leave_counts_history_and_marks(b: &dyn Backend) {
    let (store, inbox) = setup(b).await;
    let alice = user();
    let soon = OffsetDateTime::now_utc() + Duration::from_millis(400);
    let mut short = note(Category::REMIND, "short-lived");
    short.expires_at = Some(soon);
    let short = store
        .append(&StreamKey::inbox(&alice), short)
        .await
        .unwrap();
    store
        .append(&StreamKey::inbox(&alice), note(Category::REMIND, "stays"))
        .await
        .unwrap();
    let mut ann = note(Category::ANNOUNCEMENT, "flash sale");
    ann.expires_at = Some(soon);
    store.append(&StreamKey::All, ann).await.unwrap();
    let counts = inbox.counts(&alice).await.unwrap().counts();
    assert_eq!(
        (counts.unread["remind"], counts.unread["announcement"]),
        (2, 1)
    );
    // Both stores say when the counts will change next (Redis keeps ms).
    let now = OffsetDateTime::now_utc();
    let close =
        |t: Option<OffsetDateTime>| t.is_some_and(|t| (t - soon).abs() <= Duration::from_millis(1));
    assert!(close(
        store.user_counts(&alice, now).await.unwrap().0.next_expiry
    ));
    assert!(close(store.announcements(now).await.unwrap().next_expiry));
    assert!(close(inbox.counts(&alice).await.unwrap().stale_at));
    let visible = || async {
        let page = inbox
            .history(&alice, HistoryQuery::default())
            .await
            .unwrap();
        page.messages.len()
    };
    assert_eq!(visible().await, 3);
    eventually("the messages expire", || async {
        inbox.counts(&alice).await.unwrap().counts().unread_total == 1
    })
    .await;
    let counts = inbox.counts(&alice).await.unwrap().counts();
    assert_eq!(
        (counts.unread["remind"], counts.unread["announcement"]),
        (1, 0)
    );
    assert_eq!(visible().await, 1);
    assert_counts_match(&inbox, &*store, &alice).await;
    // An expired message cannot be marked; counting it again would be wrong.
    let ids = Selector::Ids(vec![short.id]);
    assert_eq!(inbox.mark(&alice, MarkState::Read, &ids).await.unwrap(), 0);
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Read, &Selector::All)
            .await
            .unwrap(),
        1
    );
    assert_counts_match(&inbox, &*store, &alice).await;
    assert_eq!(inbox.counts(&alice).await.unwrap().counts().unread_total, 0);
}

pub async fn categories_without_badge_are_listed_not_totalled(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let promo: Category = "promo".parse().unwrap();
    let categories = Categories::new(vec![CategorySpec {
        category: promo.clone(),
        max_age: None,
        badge: false,
        defaults: Default::default(),
        fallback_after: None,
    }]);
    let inbox = Inbox::new(store.clone(), categories);
    let alice = user();
    let key = StreamKey::inbox(&alice);
    store
        .append(&key, note(promo.clone(), "50% off"))
        .await
        .unwrap();
    store
        .append(&key, note(Category::SYSTEM, "hello"))
        .await
        .unwrap();
    let counts = inbox.counts(&alice).await.unwrap().counts();
    assert_eq!(counts.unread["promo"], 1);
    assert_eq!((counts.unread_total, counts.unseen_total), (1, 1));
    let marked = inbox
        .mark(&alice, MarkState::Read, &Selector::Category(promo))
        .await
        .unwrap();
    assert_eq!(marked, 1);
    assert_eq!(
        inbox.counts(&alice).await.unwrap().counts().unread["promo"],
        0
    );
}

pub async fn an_expired_message_dropped_later_is_uncounted_once(b: &dyn Backend) {
    let store = b
        .store(Retention {
            max_entries: 2,
            ..Retention::default()
        })
        .await;
    let inbox = Inbox::new(store.clone(), Categories::default());
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let mut short = note(Category::REMIND, "short-lived");
    short.expires_at = Some(OffsetDateTime::now_utc() + Duration::from_millis(300));
    store.append(&key, short).await.unwrap();
    eventually("the message expires", || async {
        inbox.counts(&alice).await.unwrap().counts().unread_total == 0
    })
    .await;
    for i in 0..3 {
        store
            .append(&key, note(Category::REMIND, &format!("{i}")))
            .await
            .unwrap();
    }
    assert_eq!(
        inbox.counts(&alice).await.unwrap().counts().unread["remind"],
        2
    );
    assert_counts_match(&inbox, &*store, &alice).await;
}

pub async fn a_mark_right_after_an_expiry_keeps_counts_equal_to_a_recount(b: &dyn Backend) {
    let (store, inbox) = setup(b).await;
    for round in 0..5 {
        let alice = user();
        let key = StreamKey::inbox(&alice);
        // Mid-millisecond, so a backend keeping expiries at ms precision
        // has not taken it yet when the mark already sees it expired.
        let at = OffsetDateTime::now_utc() + Duration::from_micros(30_500);
        let mut short = note(Category::REMIND, "short-lived");
        short.expires_at = Some(at);
        store.append(&key, short).await.unwrap();
        store
            .append(&key, note(Category::REMIND, "stays"))
            .await
            .unwrap();
        while OffsetDateTime::now_utc() <= at {
            tokio::task::yield_now().await;
        }
        inbox
            .mark(&alice, MarkState::Read, &Selector::All)
            .await
            .unwrap();
        let counts = inbox.counts(&alice).await.unwrap().counts();
        assert_eq!(counts.unread_total, 0, "round {round}");
        assert_counts_match(&inbox, &*store, &alice).await;
    }
}
