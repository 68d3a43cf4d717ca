//! Suite cases for `unread_by_severity`: exact through every change of
//! state, under concurrent marks, and for announcements.

use super::*;

/// `unread_by_severity` stays equal to a recount after each change of
/// state: append, mark by ids, unread again, mark all, delete, archive,
/// snooze and its wake-up, collapse, expiry and retention.
pub async fn unread_by_severity_follows_every_change(b: &dyn Backend) {
    let store = b
        .store(Retention {
            max_entries: 12,
            ..Retention::default()
        })
        .await;
    let inbox = Inbox::new(store.clone(), Categories::default());
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let check = |want: UnreadBySeverity| {
        let (inbox, store, alice) = (&inbox, store.clone(), alice.clone());
        async move {
            assert_eq!(assert_severities_match(inbox, &*store, &alice).await, want);
        }
    };
    let mut sent: Vec<Message> = Vec::new();
    for severity in [
        Severity::Low,
        Severity::High,
        Severity::High,
        Severity::Critical,
        Severity::Normal,
    ] {
        sent.push(
            store
                .append(&key, labelled(Category::REMIND, severity, &[]))
                .await
                .unwrap(),
        );
    }
    check(sev(1, 1, 2, 1)).await;
    // Mark read by ids, then unread again.
    let one = Selector::Ids(vec![sent[1].id]);
    assert_eq!(inbox.mark(&alice, MarkState::Read, &one).await.unwrap(), 1);
    check(sev(1, 1, 1, 1)).await;
    assert_eq!(
        inbox.mark(&alice, MarkState::Unread, &one).await.unwrap(),
        1
    );
    check(sev(1, 1, 2, 1)).await;
    // Delete and archive.
    let delete = Selector::Ids(vec![sent[0].id]);
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Deleted, &delete)
            .await
            .unwrap(),
        1
    );
    check(sev(0, 1, 2, 1)).await;
    let archive = Selector::Ids(vec![sent[3].id]);
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Archived, &archive)
            .await
            .unwrap(),
        1
    );
    check(sev(0, 1, 2, 0)).await;
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Unarchived, &archive)
            .await
            .unwrap(),
        1
    );
    check(sev(0, 1, 2, 1)).await;
    // Snooze, then its wake-up (reading the counts wakes a due snooze).
    let until = unix_ms() + 400;
    let snooze = Selector::Ids(vec![sent[2].id]);
    inbox
        .mark_until(&alice, MarkState::Snoozed, &snooze, Some(until))
        .await
        .unwrap();
    let counts = inbox.counts(&alice).await.unwrap().counts();
    if unix_ms() < until {
        assert_eq!(counts.unread_by_severity, sev(0, 1, 1, 1), "snoozed");
    }
    eventually("the snooze ends", || async {
        inbox
            .counts(&alice)
            .await
            .unwrap()
            .counts()
            .unread_by_severity
            .high
            == 2
    })
    .await;
    check(sev(0, 1, 2, 1)).await;
    // Collapse: a high message replaced by another keeps one high.
    let mut grouped = labelled(Category::REMIND, Severity::High, &[]);
    grouped.group_key = Some("g".into());
    store.append(&key, grouped.clone()).await.unwrap();
    check(sev(0, 1, 3, 1)).await;
    grouped.id = uuid::Uuid::now_v7();
    grouped.severity = Severity::Low;
    store.append(&key, grouped).await.unwrap();
    check(sev(1, 1, 2, 1)).await;
    // Expiry.
    let mut short = labelled(Category::SYSTEM, Severity::Critical, &[]);
    short.expires_at = Some(OffsetDateTime::now_utc() + Duration::from_millis(300));
    store.append(&key, short).await.unwrap();
    check(sev(1, 1, 2, 2)).await;
    eventually("the message expires", || async {
        inbox
            .counts(&alice)
            .await
            .unwrap()
            .counts()
            .unread_by_severity
            .critical
            == 1
    })
    .await;
    check(sev(1, 1, 2, 1)).await;
    // Mark all read, then unread by id again.
    inbox
        .mark(&alice, MarkState::Read, &Selector::All)
        .await
        .unwrap();
    check(sev(0, 0, 0, 0)).await;
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Unread, &archive)
            .await
            .unwrap(),
        1
    );
    check(sev(0, 0, 0, 1)).await;
    // Retention (12 entries): 18 appended, the oldest 6 leave, the unread
    // critical one (the 4th) among them.
    for _ in 0..10 {
        store
            .append(&key, labelled(Category::REMIND, Severity::Low, &[]))
            .await
            .unwrap();
    }
    check(sev(10, 0, 0, 0)).await;
}

/// Concurrent appends of every severity and marks of all kinds: the kept
/// severities equal a recount at the end.
pub async fn unread_by_severity_is_exact_under_concurrent_marks(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let inbox = Arc::new(Inbox::new(store.clone(), Categories::default()));
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let mut tasks = Vec::new();
    for i in 0..40usize {
        let (store, inbox, key, alice) = (store.clone(), inbox.clone(), key.clone(), alice.clone());
        tasks.push(tokio::spawn(async move {
            let severity = Severity::ALL[i % 4];
            let m = store
                .append(&key, labelled(Category::REMIND, severity, &["t"]))
                .await
                .unwrap();
            let mark = [
                MarkState::Read,
                MarkState::Archived,
                MarkState::Deleted,
                MarkState::Seen,
            ][i % 4];
            if i % 3 == 0 {
                inbox
                    .mark(&alice, mark, &Selector::Ids(vec![m.id]))
                    .await
                    .unwrap();
            }
            if i % 10 == 5 {
                let f = TagFilter::from_query(None, Some(severity.as_str())).unwrap();
                inbox
                    .mark_where(&alice, MarkState::Read, &Selector::All, None, &f)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_severities_match(&inbox, &*store, &alice).await;
}

/// An announcement (`to.all`, stored once) may carry any severity, and each
/// user's `unread_by_severity` counts it exactly — derived from the `all`
/// stream's severe announcements and that user's marks, nothing kept per
/// user — through the send (by the `Sender`, the API's path), a read and
/// an unread again, delete, archive, snooze and its wake-up, a filtered
/// mark, expiry, retention, and for a user who never did anything; one
/// user's marks leave another's numbers alone.
pub async fn unread_by_severity_of_announcements_follows_every_change(b: &dyn Backend) {
    let store = b
        .store(Retention {
            max_entries: 8,
            ..Retention::default()
        })
        .await;
    let inbox = Inbox::new(store.clone(), Categories::default());
    let sender = crate::Sender::new(
        store.clone(),
        b.idempotency().await,
        b.blocklist().await,
        b.timers().await,
        crate::MessageLimits::default(),
        Categories::default(),
        Duration::from_secs(60),
    );
    let (alice, bob) = (user(), user());
    let check = |who: &str, want: UnreadBySeverity| {
        let (inbox, store, who) = (&inbox, store.clone(), who.to_owned());
        async move {
            assert_eq!(
                assert_severities_match(inbox, &*store, &who).await,
                want,
                "{who}"
            );
        }
    };
    // Through the Sender: a critical announcement is accepted and stored
    // once, with its severity.
    let outgoing = sender
        .prepare(
            None,
            crate::NewMessage {
                category: Category::ANNOUNCEMENT.to_string(),
                body: "outage".into(),
                severity: Some("critical".into()),
                tags: Some(vec!["ops".into()]),
                ..crate::NewMessage::default()
            },
            None,
        )
        .unwrap();
    let sent_critical = sender.send("api", vec![outgoing]).await.unwrap();
    let critical_id = sent_critical[0].id;
    let stored = store.find(&StreamKey::All, &[critical_id]).await.unwrap();
    assert_eq!(stored[0].severity, Severity::Critical);
    let mut sent: Vec<Message> = Vec::new();
    for severity in [
        Severity::Low,
        Severity::High,
        Severity::High,
        Severity::Normal,
    ] {
        sent.push(
            store
                .append(
                    &StreamKey::All,
                    labelled(Category::ANNOUNCEMENT, severity, &["ops"]),
                )
                .await
                .unwrap(),
        );
    }
    // Alice also has an announcement-category message of her own (kept
    // counts) beside the derived ones: both add up.
    store
        .append(
            &StreamKey::inbox(&alice),
            labelled(Category::ANNOUNCEMENT, Severity::High, &[]),
        )
        .await
        .unwrap();
    check(&alice, sev(1, 1, 3, 1)).await;
    check(&bob, sev(1, 1, 2, 1)).await;
    assert_eq!(
        store.read_state(&bob).await.unwrap().version,
        0,
        "counting stores nothing per user"
    );
    // Read and unread again, by alice only.
    let one = Selector::Ids(vec![sent[1].id]);
    assert_eq!(inbox.mark(&alice, MarkState::Read, &one).await.unwrap(), 1);
    check(&alice, sev(1, 1, 2, 1)).await;
    check(&bob, sev(1, 1, 2, 1)).await;
    assert_eq!(
        inbox.mark(&alice, MarkState::Unread, &one).await.unwrap(),
        1
    );
    check(&alice, sev(1, 1, 3, 1)).await;
    // Delete, archive and unarchive.
    let low = Selector::Ids(vec![sent[0].id]);
    assert_eq!(
        inbox.mark(&alice, MarkState::Deleted, &low).await.unwrap(),
        1
    );
    check(&alice, sev(0, 1, 3, 1)).await;
    let critical = Selector::Ids(vec![critical_id]);
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Archived, &critical)
            .await
            .unwrap(),
        1
    );
    check(&alice, sev(0, 1, 3, 0)).await;
    assert_eq!(
        inbox
            .mark(&alice, MarkState::Unarchived, &critical)
            .await
            .unwrap(),
        1
    );
    check(&alice, sev(0, 1, 3, 1)).await;
    check(&bob, sev(1, 1, 2, 1)).await;
    // Snooze, then its wake-up (reading the counts wakes a due snooze).
    let until = unix_ms() + 400;
    let snooze = Selector::Ids(vec![sent[2].id]);
    inbox
        .mark_until(&alice, MarkState::Snoozed, &snooze, Some(until))
        .await
        .unwrap();
    let counts = inbox.counts(&alice).await.unwrap().counts();
    if unix_ms() < until {
        assert_eq!(counts.unread_by_severity, sev(0, 1, 2, 1), "snoozed");
    }
    eventually("the snooze ends", || async {
        inbox
            .counts(&alice)
            .await
            .unwrap()
            .counts()
            .unread_by_severity
            .high
            == 3
    })
    .await;
    check(&alice, sev(0, 1, 3, 1)).await;
    // The filters see the announcements' severity: history, the `counts`
    // request, and "mark all high read" (both streams, one mark).
    let high = TagFilter::from_query(None, Some("high")).unwrap();
    let query = HistoryQuery {
        filter: TagFilter::from_query(Some("ops"), Some("critical")).unwrap(),
        ..Default::default()
    };
    let page = inbox.history(&alice, query).await.unwrap();
    let ids: Vec<_> = page.messages.iter().map(|e| e.message.id).collect();
    assert_eq!(ids, [critical_id]);
    assert_eq!(inbox.unread_matching(&alice, &high).await.unwrap(), 3);
    assert_eq!(
        inbox
            .mark_where(&alice, MarkState::Read, &Selector::All, None, &high)
            .await
            .unwrap(),
        3
    );
    check(&alice, sev(0, 1, 0, 1)).await;
    check(&bob, sev(1, 1, 2, 1)).await;
    // Expiry.
    let mut short = labelled(Category::ANNOUNCEMENT, Severity::Critical, &[]);
    short.expires_at = Some(OffsetDateTime::now_utc() + Duration::from_millis(300));
    store.append(&StreamKey::All, short).await.unwrap();
    check(&alice, sev(0, 1, 0, 2)).await;
    eventually("the announcement expires", || async {
        inbox
            .counts(&alice)
            .await
            .unwrap()
            .counts()
            .unread_by_severity
            .critical
            == 1
    })
    .await;
    check(&alice, sev(0, 1, 0, 1)).await;
    check(&bob, sev(1, 1, 2, 1)).await;
    // A user who never connected counts every unread one.
    let carol = user();
    check(&carol, sev(1, 1, 2, 1)).await;
    // Mark all read.
    inbox
        .mark(&alice, MarkState::Read, &Selector::All)
        .await
        .unwrap();
    check(&alice, sev(0, 0, 0, 0)).await;
    // Retention (8 entries): 10 appended, the oldest 2 (the critical one
    // and the low one) leave; the index forgets them.
    for _ in 0..4 {
        store
            .append(
                &StreamKey::All,
                labelled(Category::ANNOUNCEMENT, Severity::Low, &[]),
            )
            .await
            .unwrap();
    }
    check(&bob, sev(4, 1, 2, 0)).await;
    check(&alice, sev(4, 0, 0, 0)).await;
    assert_eq!(inbox.unread_matching(&bob, &high).await.unwrap(), 2);
}
