//! Suite cases for snoozes under races: concurrent marks, a node dying at
//! its wake-up's commit, a snooze committed while a waker holds the user.

use super::*;

/// Snoozes, marks, appends and wake-ups of one user all at once: the kept
/// counts equal a recount at the end, and every message is either back or
/// still snoozed with a wake-up to come.
pub async fn snooze_counts_equal_a_recount_under_concurrent_marks(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (inbox, scheduler) = node(b, store.clone(), Duration::from_secs(5)).await;
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let mut ids = Vec::new();
    for i in 0..24 {
        ids.push(
            store
                .append(&key, Draft::new(Category::REMIND, format!("m{i}")))
                .await
                .unwrap()
                .id,
        );
    }
    // Four writers at a time (one user's marks are compare-and-set: many
    // more at once would exhaust their tries), with wake rounds alongside.
    let work = ids.iter().enumerate().map(|(i, id)| {
        let (inbox, store, alice, key, id) = (&inbox, &store, &alice, &key, *id);
        async move {
            let one = Selector::Ids(vec![id]);
            // `until` taken at each try, as a client retrying would: on a
            // loaded machine the tries before may outlast 100 ms.
            let ahead = 100 + (i as i64 % 4) * 50;
            retried(|| inbox.mark_until(alice, MarkState::Snoozed, &one, Some(unix_ms() + ahead)))
                .await;
            match i % 4 {
                0 => drop(retried(|| inbox.mark(alice, MarkState::Read, &one)).await),
                1 => drop(retried(|| inbox.mark(alice, MarkState::Seen, &one)).await),
                2 => drop(
                    store
                        .append(key, Draft::new(Category::SYSTEM, "more"))
                        .await
                        .unwrap(),
                ),
                _ => {}
            }
        }
    });
    let writing = async {
        use futures_util::StreamExt;
        futures_util::stream::iter(work)
            .buffer_unordered(4)
            .collect::<Vec<()>>()
            .await
    };
    let waking = async {
        for _ in 0..20 {
            scheduler.run_wakes(&inbox, unix_ms()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::join!(writing, waking);
    // Everything due by now is woken (by a round, or the counts read).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_counts_match(&inbox, &*store, &alice).await;
    let state = store.read_state(&alice).await.unwrap();
    assert!(state.marks(Stream::Inbox).snoozed.is_empty(), "all woken");
    let counts = inbox.counts(&alice).await.unwrap().counts();
    // 6 read stay read; 18 are back (unread), plus 6 system ones.
    assert_eq!(counts.unread_total, 24);
}

/// The crash points of a snooze: a node that dies just after committing it
/// (the reply lost, nothing run after the commit) still leaves its
/// wake-up, and another node's scheduler brings the message back at
/// `until` (no counts read helps here); one that dies just before leaves
/// nothing snoozed, and its early wake-up finds nothing due and ends.
pub async fn snooze_wake_up_survives_a_node_dying_at_its_commit(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let dying = DyingStore::new(store.clone());
    let (one, _) = node(b, dying.clone(), Duration::from_secs(5)).await;
    let (two, s2) = node(b, store.clone(), Duration::from_secs(5)).await;
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let m = store
        .append(&key, Draft::new(Category::REMIND, "later"))
        .await
        .unwrap();
    let ids = Selector::Ids(vec![m.id]);

    // Dies just after: the snooze is committed, the caller saw an error.
    dying.die_after_commit();
    let until = unix_ms() + 400;
    let died = one
        .mark_until(&alice, MarkState::Snoozed, &ids, Some(until))
        .await;
    assert!(matches!(died, Err(CoreError::Unavailable(_))), "{died:?}");
    let state = store.read_state(&alice).await.unwrap();
    assert_eq!(
        state.marks(Stream::Inbox).snoozed.get(&m.seq),
        Some(&until),
        "committed before the node died"
    );
    assert_eq!(wake(&[(&two, &s2)], 1).await, 1, "woken by the other node");
    assert!(unix_ms() >= until);
    assert_counts_match(&two, &*store, &alice).await;
    assert_eq!(two.counts(&alice).await.unwrap().counts().unread_total, 1);

    // Dies just before: nothing snoozed, the wake-up is a no-op.
    dying.die_before_commit();
    let until = unix_ms() + 200;
    let died = one
        .mark_until(&alice, MarkState::Snoozed, &ids, Some(until))
        .await;
    assert!(matches!(died, Err(CoreError::Unavailable(_))), "{died:?}");
    let state = store.read_state(&alice).await.unwrap();
    assert!(
        state.marks(Stream::Inbox).snoozed.is_empty(),
        "nothing half-written"
    );
    assert_eq!(two.counts(&alice).await.unwrap().counts().unread_total, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let round = s2.run_wakes(&two, unix_ms()).await.unwrap();
        assert_eq!(round.woken, 0, "nothing was snoozed");
        if round.users == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = s2.run_wakes(&two, unix_ms() + 60_000).await.unwrap();
    assert_eq!(after.users, 0, "the no-op wake-up ended");
    assert_counts_match(&two, &*store, &alice).await;
}

/// A snooze whose commit lands while another node's waker holds the user
/// and has read the state before it (and found something due, or nothing
/// due: a snooze read before was cancelled) keeps its wake-up: the
/// waker's commit makes the snooze's compare-and-set fail, and its retry
/// records the wake-up again. Forced with the waker's whole round run
/// just before the snooze's first commit.
pub async fn snooze_committed_while_a_waker_holds_the_user_is_kept(b: &dyn Backend) {
    for cancelled in [false, true] {
        let store = b.store(Retention::default()).await;
        let dying = DyingStore::new(store.clone());
        let (one, _) = node(b, dying.clone(), Duration::from_secs(5)).await;
        let (two, s2) = node(b, store.clone(), Duration::from_secs(5)).await;
        let (two, s2) = (Arc::new(two), Arc::new(s2));
        let carol = user();
        let key = StreamKey::inbox(&carol);
        let first = store
            .append(&key, Draft::new(Category::REMIND, "first"))
            .await
            .unwrap();
        let second = store
            .append(&key, Draft::new(Category::REMIND, "second"))
            .await
            .unwrap();
        let due = unix_ms() + 100;
        one.mark_until(
            &carol,
            MarkState::Snoozed,
            &Selector::Ids(vec![first.id]),
            Some(due),
        )
        .await
        .unwrap();
        if cancelled {
            one.mark(&carol, MarkState::Read, &Selector::Ids(vec![first.id]))
                .await
                .unwrap();
        }
        while unix_ms() <= due {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The other node's round (claim, read, commit, next wake-up) runs
        // between the snooze's read and its commit.
        let (waker, scheduler) = (two.clone(), s2.clone());
        let (done_tx, mut done) = mpsc::unbounded_channel();
        dying.before_commit(Box::pin(async move {
            let round = scheduler.run_wakes(&waker, unix_ms()).await.unwrap();
            let _ = done_tx.send(round);
        }));
        let until = unix_ms() + 400;
        one.mark_until(
            &carol,
            MarkState::Snoozed,
            &Selector::Ids(vec![second.id]),
            Some(until),
        )
        .await
        .unwrap();
        let round = done.try_recv().expect("the waker ran before the commit");
        assert_eq!(round.users, 1, "the waker held carol");
        assert_eq!(
            round.woken,
            usize::from(!cancelled),
            "cancelled: {cancelled}"
        );
        let state = store.read_state(&carol).await.unwrap();
        assert_eq!(
            state.marks(Stream::Inbox).snoozed.get(&second.seq),
            Some(&until)
        );
        assert_eq!(
            wake(&[(&*two, &*s2)], 1).await,
            1,
            "the second snooze woken (cancelled: {cancelled})"
        );
        assert!(unix_ms() >= until);
        assert_counts_match(&two, &*store, &carol).await;
        let unread = if cancelled { 1 } else { 2 };
        assert_eq!(
            two.counts(&carol).await.unwrap().counts().unread_total,
            unread
        );
    }
}
