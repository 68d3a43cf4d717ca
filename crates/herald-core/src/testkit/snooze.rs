//! Suite cases for snooze: the `snoozed` mark with its `until`, the
//! wake-ups a node's [`Scheduler`] runs ([`Timers`](crate::Timers)'s
//! wake-up index) and [`Inbox::wake`], each write atomic with its counts.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{Category, Changed, ChangedState, MarkState, MessageState, Stream};
use tokio::sync::mpsc;

use super::notification_center::assert_counts_match;
use super::{user, Backend, DyingStore};
use crate::{
    unix_ms, BrokerSink, Categories, CoreError, Delivery, Draft, HistoryQuery, Inbox, Retention,
    ScheduleSettings, Scheduler, Selector, Store, StreamKey,
};

/// A node's inbox (wake-ups registered) and scheduler, sharing `b`'s.
async fn node(b: &dyn Backend, store: Arc<dyn Store>, lease: Duration) -> (Inbox, Scheduler) {
    let timers = b.timers().await;
    let inbox = Inbox::new(store, Categories::default()).with_wakes(timers.clone());
    let scheduler = Scheduler::new(
        timers,
        ScheduleSettings {
            lease,
            ..ScheduleSettings::default()
        },
    );
    (inbox, scheduler)
}

/// Records the `changed` events a broker hands over.
struct ChangedSink(mpsc::UnboundedSender<(String, Changed)>);

impl BrokerSink for ChangedSink {
    fn deliver(&self, _delivery: Arc<Delivery>) {}
    fn resync(&self) {}
    fn counts_changed(&self, _user: &str) {}
    fn receipt(&self, _user: &str, _receipt: &herald_protocol::Receipt) {}
    fn changed(&self, user: &str, changed: &Changed) {
        let _ = self.0.send((user.to_owned(), changed.clone()));
    }
}

/// How far ahead a test snoozes when it then checks the messages are
/// still snoozed: reading the counts wakes what is due, and on a loaded
/// CI machine a few hundred ms went by between the snooze and the check.
const LEAD_MS: i64 = 1_500;

/// Runs wake rounds on every scheduler until `want` messages woke in all
/// (or panics after 10 s); returns that total.
async fn wake(nodes: &[(&Inbox, &Scheduler)], want: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut woken = 0;
    while woken < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{woken} of {want} woken in 10 s"
        );
        let rounds = futures_util::future::join_all(
            nodes
                .iter()
                .map(|(inbox, scheduler)| scheduler.run_wakes(inbox, unix_ms())),
        )
        .await;
        for round in rounds {
            woken += round.unwrap().woken;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    woken
}

async fn history(inbox: &Inbox, user: &str, snoozed: bool) -> Vec<(String, MessageState)> {
    inbox
        .history(
            user,
            HistoryQuery {
                snoozed,
                ..HistoryQuery::default()
            },
        )
        .await
        .unwrap()
        .messages
        .into_iter()
        .map(|e| (e.message.body, e.state))
        .collect()
}

/// A snooze takes messages out of the counts (as a recount says) and the
/// default history at once; `snoozed: true` lists them with their
/// `until`. At `until` one wake-up brings them back unseen, pushes one
/// `changed` (`unsnoozed`) with their ids to the user's channel, and a
/// second round finds nothing.
pub async fn snooze_leaves_the_counts_then_comes_back_unread(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (inbox, scheduler) = node(b, store.clone(), Duration::from_secs(5)).await;
    let alice = user();
    let (tx, mut changes) = mpsc::unbounded_channel();
    let broker = b.broker("snooze-node", Arc::new(ChangedSink(tx))).await;
    broker
        .subscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();
    let key = StreamKey::inbox(&alice);
    let mut sent = Vec::new();
    for body in ["a", "b", "c"] {
        sent.push(
            store
                .append(&key, Draft::new(Category::REMIND, body))
                .await
                .unwrap(),
        );
    }
    let until = unix_ms() + LEAD_MS;
    let ids = Selector::Ids(vec![sent[0].id, sent[1].id]);
    let changed = inbox
        .mark_until(&alice, MarkState::Snoozed, &ids, Some(until))
        .await
        .unwrap();
    assert_eq!(changed, 2);
    let counts = inbox.counts(&alice).await.unwrap().counts();
    assert_eq!((counts.unread_total, counts.unseen_total), (1, 1));
    assert_counts_match(&inbox, &*store, &alice).await;
    assert_eq!(
        history(&inbox, &alice, false).await,
        [("c".into(), MessageState::Unseen)]
    );
    let snoozed = inbox
        .history(
            &alice,
            HistoryQuery {
                snoozed: true,
                ..HistoryQuery::default()
            },
        )
        .await
        .unwrap()
        .messages;
    assert_eq!(snoozed.len(), 2);
    assert!(snoozed
        .iter()
        .all(|e| e.state == MessageState::Snoozed && e.until == Some(until)));
    // Snoozing again (a retry) changes nothing.
    assert_eq!(
        inbox
            .mark_until(&alice, MarkState::Snoozed, &ids, Some(until))
            .await
            .unwrap(),
        0
    );
    let early = scheduler.run_wakes(&inbox, unix_ms()).await.unwrap();
    assert_eq!(early.woken, 0, "not due yet");

    assert_eq!(wake(&[(&inbox, &scheduler)], 2).await, 2);
    assert!(unix_ms() >= until);
    let counts = inbox.counts(&alice).await.unwrap().counts();
    assert_eq!((counts.unread_total, counts.unseen_total), (3, 3));
    assert_counts_match(&inbox, &*store, &alice).await;
    assert_eq!(history(&inbox, &alice, true).await, []);
    assert_eq!(history(&inbox, &alice, false).await.len(), 3);
    let (who, frame) = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a changed event")
        .unwrap();
    assert_eq!(who, alice);
    assert_eq!(frame.state, ChangedState::Unsnoozed);
    let mut got = frame.ids.clone();
    got.sort();
    let mut want = vec![sent[0].id, sent[1].id];
    want.sort();
    assert_eq!(got, want);
    let again = scheduler
        .run_wakes(&inbox, unix_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!((again.users, again.woken), (0, 0), "nothing left to wake");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), changes.recv())
            .await
            .is_err(),
        "one changed event"
    );
}

/// A `read`, `archived` or `deleted` mark before `until` cancels that
/// message's wake-up; `seen` does not. Snoozing by category and `all`
/// works like any selector (`all` in other cases); counts match a recount after each step.
pub async fn snooze_is_cancelled_by_read_archive_and_delete(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (inbox, scheduler) = node(b, store.clone(), Duration::from_secs(5)).await;
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let mut sent = Vec::new();
    for body in ["read", "archived", "deleted", "seen", "system"] {
        let category = if body == "system" {
            Category::SYSTEM
        } else {
            Category::REMIND
        };
        sent.push(
            store
                .append(&key, Draft::new(category, body))
                .await
                .unwrap(),
        );
    }
    let until = unix_ms() + LEAD_MS;
    let by_category = Selector::Category(Category::REMIND);
    assert_eq!(
        inbox
            .mark_until(&alice, MarkState::Snoozed, &by_category, Some(until))
            .await
            .unwrap(),
        4
    );
    assert_counts_match(&inbox, &*store, &alice).await;
    for (i, mark) in [
        (0, MarkState::Read),
        (1, MarkState::Archived),
        (2, MarkState::Deleted),
        (3, MarkState::Seen),
    ] {
        let ids = Selector::Ids(vec![sent[i].id]);
        assert_eq!(inbox.mark(&alice, mark, &ids).await.unwrap(), 1, "{mark:?}");
        assert_counts_match(&inbox, &*store, &alice).await;
    }
    assert_eq!(
        history(&inbox, &alice, true).await,
        [("seen".into(), MessageState::Snoozed)]
    );
    // Another category's message, snoozed by itself.
    let system = Selector::Category(Category::SYSTEM);
    inbox
        .mark_until(
            &alice,
            MarkState::Snoozed,
            &system,
            Some(unix_ms() + LEAD_MS),
        )
        .await
        .unwrap();
    assert_counts_match(&inbox, &*store, &alice).await;
    let counts = inbox.counts(&alice).await.unwrap().counts();
    assert_eq!(counts.unread_total, 0);

    // Only the two still snoozed come back, unseen.
    assert_eq!(wake(&[(&inbox, &scheduler)], 2).await, 2);
    let mut shown = history(&inbox, &alice, false).await;
    shown.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        shown,
        [
            ("read".into(), MessageState::Read),
            ("seen".into(), MessageState::Unseen),
            ("system".into(), MessageState::Unseen),
        ]
    );
    let archived = inbox
        .history(
            &alice,
            HistoryQuery {
                state: Some(herald_protocol::StateFilter::Archived),
                ..HistoryQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(archived.messages.len(), 1);
    assert_counts_match(&inbox, &*store, &alice).await;
    let counts = inbox.counts(&alice).await.unwrap().counts();
    assert_eq!((counts.unread_total, counts.unseen_total), (2, 2));
}

/// `until` in the past, now or more than a year ahead is refused, as are
/// a snooze without `until` and `until` on another mark; nothing changes.
pub async fn snooze_validates_until(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (inbox, _) = node(b, store.clone(), Duration::from_secs(5)).await;
    let alice = user();
    let m = store
        .append(&StreamKey::inbox(&alice), Draft::new(Category::REMIND, "x"))
        .await
        .unwrap();
    let ids = Selector::Ids(vec![m.id]);
    let year = 366 * 24 * 3600 * 1000_i64;
    for (mark, until) in [
        (MarkState::Snoozed, Some(unix_ms() - 1_000)),
        (MarkState::Snoozed, Some(unix_ms())),
        (MarkState::Snoozed, Some(unix_ms() + year + 60_000)),
        (MarkState::Snoozed, None),
        (MarkState::Read, Some(unix_ms() + 60_000)),
    ] {
        match inbox.mark_until(&alice, mark, &ids, until).await {
            Err(CoreError::Invalid(m)) => assert!(m.starts_with("until: "), "{m}"),
            other => panic!("{mark:?} {until:?}: {other:?}"),
        }
    }
    assert_eq!(
        inbox
            .mark_until(
                &alice,
                MarkState::Snoozed,
                &ids,
                Some(unix_ms() + year - 60_000)
            )
            .await
            .unwrap(),
        1
    );
    assert_counts_match(&inbox, &*store, &alice).await;
}

/// Two nodes wake at once: each message comes back once (one `changed`
/// each in all). A node that claims a user's wake-up and dies holds it
/// only for its lease; a snooze committed while a claim holds the user is
/// not lost; without any waker, reading the counts ends a due snooze.
pub async fn snooze_wakes_once_across_nodes_and_after_a_death(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    // Long enough that the dead node's claim below still holds when the
    // other node looks, on a loaded machine.
    let lease = Duration::from_millis(1_500);
    let (one, s1) = node(b, store.clone(), lease).await;
    let (two, s2) = node(b, store.clone(), lease).await;
    let users: Vec<String> = (0..20).map(|_| user()).collect();
    for u in &users {
        store
            .append(&StreamKey::inbox(u), Draft::new(Category::REMIND, "x"))
            .await
            .unwrap();
    }
    for u in &users {
        // Each `until` read at its own mark: 20 marks on a loaded machine
        // can outlast one shared lead.
        retried(|| one.mark_until(u, MarkState::Snoozed, &Selector::All, Some(unix_ms() + 300)))
            .await;
    }
    assert_eq!(wake(&[(&one, &s1), (&two, &s2)], 20).await, 20, "each once");
    for u in &users {
        assert_counts_match(&one, &*store, u).await;
        assert_eq!(one.counts(u).await.unwrap().counts().unread_total, 1);
    }

    // A claim taken by a node that dies: the user waits out the lease.
    let carol = user();
    let key = StreamKey::inbox(&carol);
    store
        .append(&key, Draft::new(Category::REMIND, "first"))
        .await
        .unwrap();
    retried(|| {
        one.mark_until(
            &carol,
            MarkState::Snoozed,
            &Selector::All,
            Some(unix_ms() + 100),
        )
    })
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let timers = b.timers().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !timers
        .claim_wakes(unix_ms(), 100, lease)
        .await
        .unwrap()
        .contains(&carol)
    {
        assert!(tokio::time::Instant::now() < deadline, "never due");
    }
    // While held, another snooze of hers (a second message) is committed.
    let second = store
        .append(&key, Draft::new(Category::REMIND, "second"))
        .await
        .unwrap();
    let second_only = Selector::Ids(vec![second.id]);
    retried(|| {
        two.mark_until(
            &carol,
            MarkState::Snoozed,
            &second_only,
            Some(unix_ms() + 600),
        )
    })
    .await;
    let held = s2.run_wakes(&two, unix_ms()).await.unwrap();
    assert_eq!(held.woken, 0, "leased to the dead node");
    assert_eq!(wake(&[(&two, &s2)], 2).await, 2, "both, after the lease");
    assert_counts_match(&two, &*store, &carol).await;
    assert_eq!(two.counts(&carol).await.unwrap().counts().unread_total, 2);

    // No waker at all: the counts read ends a due snooze.
    let dave = user();
    let plain = Inbox::new(store.clone(), Categories::default());
    store
        .append(&StreamKey::inbox(&dave), Draft::new(Category::REMIND, "x"))
        .await
        .unwrap();
    // A lead of 1.5 s: the counts read right after must find it snoozed.
    let until = unix_ms() + 1_500;
    plain
        .mark_until(&dave, MarkState::Snoozed, &Selector::All, Some(until))
        .await
        .unwrap();
    assert_eq!(plain.counts(&dave).await.unwrap().counts().unread_total, 0);
    let past_until = (until + 50 - unix_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(past_until)).await;
    assert_eq!(plain.counts(&dave).await.unwrap().counts().unread_total, 1);
    assert_counts_match(&plain, &*store, &dave).await;
}

/// A mark, tried again while it answers `unavailable` (its compare-and-set
/// lost too often to the others running at once), as a client would.
async fn retried<F, Fut>(mut mark: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<u64>>,
{
    for attempt in 1..=20u64 {
        match mark().await {
            Err(CoreError::Unavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(5 * attempt)).await
            }
            // A stalled machine can spend all of `until`'s lead before the
            // mark reads the clock: a client would pick a new `until`, and
            // so does `mark` when called again.
            Err(CoreError::Invalid(m)) if m.starts_with("until") => {}
            other => return other.unwrap(),
        }
    }
    panic!("a mark kept losing its compare-and-set");
}

mod races;
pub use races::*;
