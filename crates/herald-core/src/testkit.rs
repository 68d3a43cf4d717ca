//! The behavioural suite every backend must pass, written once.
//!
//! A backend crate implements [`Backend`] for its test setup and expands
//! [`backend_suite!`](crate::backend_suite) in a test file. Every case uses
//! fresh user ids, so backends may share one server between cases.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_protocol::{Category, Stream};
use tokio::sync::mpsc;
use uuid::Uuid;

mod actions;
pub use actions::*;
mod collapse;
pub use collapse::*;
mod conversations;
pub use conversations::*;
mod dying_store;
pub use dying_store::DyingStore;
mod fanout;
pub use fanout::*;
mod idempotency;
pub use idempotency::*;
mod notification_center;
pub use notification_center::*;
mod schedule;
pub use schedule::*;
mod preferences;
pub use preferences::*;
mod snooze;
pub use snooze::*;
mod tags;
pub use tags::*;
mod topics;
pub use topics::*;
mod user_data;
pub use user_data::*;
mod webhooks;
pub use webhooks::*;

/// Block, unblock, list, check; shared between two instances (nodes).
pub async fn blocklist_blocks_and_unblocks(b: &dyn Backend) {
    let (one, two) = (b.blocklist().await, b.blocklist().await);
    let (alice, mallory, eve) = (user(), user(), user());
    assert!(one.block(&alice, &mallory).await.unwrap());
    assert!(
        !one.block(&alice, &mallory).await.unwrap(),
        "already blocked"
    );
    assert!(two.block(&alice, &eve).await.unwrap());
    assert!(two.is_blocked(&alice, &mallory).await.unwrap());
    assert!(
        !two.is_blocked(&mallory, &alice).await.unwrap(),
        "blocking is one-way"
    );
    let mut want = vec![eve.clone(), mallory.clone()];
    want.sort();
    assert_eq!(one.blocked_by(&alice).await.unwrap(), want);
    assert!(two.unblock(&alice, &mallory).await.unwrap());
    assert!(!one.unblock(&alice, &mallory).await.unwrap());
    assert!(!one.is_blocked(&alice, &mallory).await.unwrap());
    assert!(one.block(&alice, &alice).await.is_err(), "oneself");
    assert!(one.block(&alice, "a b").await.is_err());

    // The store's append refuses a blocked sender's private message.
    let store = b.store(Retention::default()).await;
    let inbox = StreamKey::inbox(&alice);
    let private = |from: &str| {
        let mut d = Draft::new(Category::MAILBOX, "hi");
        d.from = Some(from.to_owned());
        d
    };
    let refused = store.append(&inbox, private(&eve)).await;
    assert!(
        matches!(refused, Err(crate::CoreError::Blocked(_))),
        "{refused:?}"
    );
    assert_eq!(store.last_seq(&inbox).await.unwrap(), 0, "nothing stored");
    assert_eq!(
        store.append(&inbox, private(&mallory)).await.unwrap().seq,
        1
    );
    let mut notice = Draft::new(Category::SYSTEM, "from eve, not private");
    notice.from = Some(eve.clone());
    assert_eq!(store.append(&inbox, notice).await.unwrap().seq, 2);
}

use crate::{Broker, BrokerSink, ConnInfo, Delivery, Draft, Presence, Retention, Store, StreamKey};

/// Builds the parts of one backend for a test.
#[async_trait]
pub trait Backend: Send + Sync {
    async fn store(&self, retention: Retention) -> Arc<dyn Store>;
    async fn broker(&self, node: &str, sink: Arc<dyn BrokerSink>) -> Arc<dyn Broker>;
    async fn presence(&self, node: &str) -> Arc<dyn Presence>;
    /// Each call as a separate node would get it (for Redis, on its own
    /// connections), all sharing one set of claims.
    async fn idempotency(&self) -> Arc<dyn crate::Idempotency>;
    /// Each call as a separate node would get it, all sharing one set of
    /// subscriptions.
    async fn topics(&self) -> Arc<dyn crate::Topics>;
    async fn blocklist(&self) -> Arc<dyn crate::Blocklist>;
    /// Each call as a separate node would get it, all sharing one job
    /// queue and the subscriptions of [`Backend::topics`].
    async fn jobs(&self) -> Arc<dyn crate::JobQueue>;
    /// Each call as a separate node would get it, all sharing one
    /// schedule.
    async fn timers(&self) -> Arc<dyn crate::Timers>;
    /// Each call as a separate node would get it, all sharing one set of
    /// preferences and publishing on the brokers' channels.
    async fn preferences(&self) -> Arc<dyn crate::PreferenceStore>;
    /// Each call as a separate node would get it, all sharing one index
    /// of webhook events.
    async fn webhooks(&self) -> Arc<dyn crate::WebhookQueue>;
}

/// A sink that records what a broker delivers.
pub struct RecordingSink {
    tx: mpsc::UnboundedSender<Arc<Delivery>>,
}

pub struct Recorded(mpsc::UnboundedReceiver<Arc<Delivery>>);

impl RecordingSink {
    pub fn new() -> (Arc<Self>, Recorded) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(RecordingSink { tx }), Recorded(rx))
    }
}

impl BrokerSink for RecordingSink {
    fn deliver(&self, delivery: Arc<Delivery>) {
        let _ = self.tx.send(delivery);
    }
    fn resync(&self) {}
    fn counts_changed(&self, _user: &str) {}
    fn receipt(&self, _user: &str, _receipt: &herald_protocol::Receipt) {}
}

impl Recorded {
    /// The next delivery, or a panic after five seconds.
    pub async fn next(&mut self) -> Arc<Delivery> {
        tokio::time::timeout(Duration::from_secs(5), self.0.recv())
            .await
            .expect("no delivery within 5 s")
            .expect("sink closed")
    }

    /// Asserts nothing arrives within `wait`.
    pub async fn none_within(&mut self, wait: Duration) {
        if let Ok(Some(d)) = tokio::time::timeout(wait, self.0.recv()).await {
            panic!("unexpected delivery {:?}", d.message);
        }
    }
}

pub fn user() -> String {
    format!("u-{}", Uuid::new_v4().simple())
}

pub fn draft(body: &str) -> Draft {
    Draft::new(Category::REMIND, body)
}

pub async fn store_assigns_gap_free_seqs(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let key = StreamKey::inbox(user());
    assert_eq!(store.last_seq(&key).await.unwrap(), 0);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            store
                .append(&key, draft(&format!("m{i}")))
                .await
                .unwrap()
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    assert_eq!(store.last_seq(&key).await.unwrap(), 50);
}

/// Appends to one stream whose futures are first polled in order get seqs
/// in that order, even when many are in flight at once (a connection
/// pipelines its `send`s this way). Appends to other streams are mixed in so
/// that a batching backend batches across users.
pub async fn store_keeps_the_order_appends_were_made_in(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let key = StreamKey::inbox(user());
    let others: Vec<StreamKey> = (0..8).map(|_| StreamKey::inbox(user())).collect();
    for round in 0..3 {
        let mut appends = Vec::new();
        for i in 0..200 {
            appends.push(store.append(&key, draft(&format!("{round}-{i}"))));
            appends.push(store.append(&others[i % others.len()], draft("x")));
        }
        // join_all polls its futures in order the first time.
        let mine: Vec<String> = futures_util::future::join_all(appends)
            .await
            .into_iter()
            .step_by(2)
            .map(|m| m.unwrap().body)
            .collect();
        let stored: Vec<String> = store
            .read_after(&key, round * 200, 200)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(stored, mine, "round {round}");
    }
}

pub async fn store_reads_in_order_and_pages(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let key = StreamKey::inbox(user());
    for i in 1..=7 {
        let mut d = draft(&format!("m{i}"));
        d.title = Some(format!("t{i}"));
        d.data = serde_json::json!({"i": i});
        let m = store.append(&key, d.clone()).await.unwrap();
        assert_eq!((m.seq, m.id, m.body.as_str()), (i, d.id, d.body.as_str()));
    }
    let page = store.read_after(&key, 2, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert_eq!(page[0].title.as_deref(), Some("t3"));
    assert_eq!(page[0].data, serde_json::json!({"i": 3}));
    assert_eq!(page[0].stream, Stream::Inbox);
    assert!(store.read_after(&key, 7, 10).await.unwrap().is_empty());
}

pub async fn store_streams_are_independent(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (alice, bob) = (StreamKey::inbox(user()), StreamKey::inbox(user()));
    store.append(&alice, draft("a1")).await.unwrap();
    store.append(&alice, draft("a2")).await.unwrap();
    assert_eq!(store.append(&bob, draft("b1")).await.unwrap().seq, 1);
    let before = store.last_seq(&StreamKey::All).await.unwrap();
    let m = store.append(&StreamKey::All, draft("all")).await.unwrap();
    assert_eq!((m.seq, m.stream), (before + 1, Stream::All));
    assert_eq!(store.last_seq(&alice).await.unwrap(), 2);
}

pub async fn store_cursors_only_move_forward(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let u = user();
    let key = StreamKey::inbox(&u);
    for _ in 0..5 {
        store.append(&key, draft("x")).await.unwrap();
    }
    assert_eq!(store.acked(&u, "phone", Stream::Inbox).await.unwrap(), 0);
    assert_eq!(store.ack(&u, "phone", Stream::Inbox, 3).await.unwrap(), 3);
    assert_eq!(store.ack(&u, "phone", Stream::Inbox, 2).await.unwrap(), 3);
    assert_eq!(store.ack(&u, "phone", Stream::Inbox, 99).await.unwrap(), 5);
    assert_eq!(store.acked(&u, "laptop", Stream::Inbox).await.unwrap(), 0);
    assert_eq!(store.acked(&u, "phone", Stream::All).await.unwrap(), 0);
}

pub async fn store_keeps_max_entries(b: &dyn Backend) {
    let store = b
        .store(Retention {
            max_entries: 3,
            ..Retention::default()
        })
        .await;
    let key = StreamKey::inbox(user());
    for _ in 0..6 {
        store.append(&key, draft("x")).await.unwrap();
    }
    let kept: Vec<u64> = store
        .read_after(&key, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(kept, vec![4, 5, 6]);
    assert_eq!(store.last_seq(&key).await.unwrap(), 6);
}

pub async fn broker_delivers_to_subscribers_only(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (sink, mut got) = RecordingSink::new();
    let broker = b.broker("node-a", sink).await;
    let (alice, bob) = (user(), user());
    broker
        .subscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();
    store
        .append(&StreamKey::inbox(&bob), draft("for bob"))
        .await
        .unwrap();
    let m = store
        .append(&StreamKey::inbox(&alice), draft("hi"))
        .await
        .unwrap();
    let d = got.next().await;
    assert_eq!(d.key, StreamKey::inbox(&alice));
    assert_eq!(d.message, m);
    broker
        .unsubscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();
    store
        .append(&StreamKey::inbox(&alice), draft("gone"))
        .await
        .unwrap();
    got.none_within(Duration::from_millis(300)).await;
}

/// Many users subscribed in one call (a node reconnecting, or a burst of
/// connects batched by `UserChannels`) all get their messages once the
/// call returns; unsubscribing them all in one call stops every one.
pub async fn broker_subscribes_many_users_at_once(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (sink, mut got) = RecordingSink::new();
    let broker = b.broker("node-a", sink).await;
    let users: Vec<String> = (0..300).map(|_| user()).collect();
    broker.subscribe(&users).await.unwrap();
    let keys: Vec<StreamKey> = users.iter().map(|u| StreamKey::inbox(u.as_str())).collect();
    let appends = keys.iter().map(|k| store.append(k, draft("hi")));
    for m in futures_util::future::join_all(appends).await {
        m.unwrap();
    }
    let mut reached = std::collections::HashSet::new();
    for _ in 0..users.len() {
        let d = got.next().await;
        assert!(reached.insert(d.key.clone()), "twice: {:?}", d.key);
    }
    broker.unsubscribe(&users).await.unwrap();
    store
        .append(&StreamKey::inbox(users[7].as_str()), draft("gone"))
        .await
        .unwrap();
    got.none_within(Duration::from_millis(300)).await;
}

pub async fn broker_keeps_stream_order(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (sink, mut got) = RecordingSink::new();
    let broker = b.broker("node-a", sink).await;
    let alice = user();
    broker
        .subscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();
    for i in 0..20 {
        store
            .append(&StreamKey::inbox(&alice), draft(&i.to_string()))
            .await
            .unwrap();
    }
    for seq in 1..=20 {
        assert_eq!(got.next().await.message.seq, seq);
    }
}

pub async fn broker_all_stream_reaches_every_node(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (sink_a, mut got_a) = RecordingSink::new();
    let (sink_b, mut got_b) = RecordingSink::new();
    let _a = b.broker("node-a", sink_a).await;
    let _b = b.broker("node-b", sink_b).await;
    let m = store
        .append(&StreamKey::All, draft("everyone"))
        .await
        .unwrap();
    for got in [&mut got_a, &mut got_b] {
        let d = got.next().await;
        assert_eq!((d.key.clone(), d.message.id), (StreamKey::All, m.id));
    }
}

pub async fn broker_user_on_two_nodes(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (sink_a, mut got_a) = RecordingSink::new();
    let (sink_b, mut got_b) = RecordingSink::new();
    let a = b.broker("node-a", sink_a).await;
    let bb = b.broker("node-b", sink_b).await;
    let alice = user();
    a.subscribe(std::slice::from_ref(&alice)).await.unwrap();
    bb.subscribe(std::slice::from_ref(&alice)).await.unwrap();
    let m = store
        .append(&StreamKey::inbox(&alice), draft("x"))
        .await
        .unwrap();
    assert_eq!(got_a.next().await.message.id, m.id);
    assert_eq!(got_b.next().await.message.id, m.id);
    got_a.none_within(Duration::from_millis(200)).await;
}

fn conn(user: &str, node: &str) -> ConnInfo {
    ConnInfo {
        conn_id: Uuid::new_v4(),
        user_id: user.to_owned(),
        node_id: node.to_owned(),
        device: crate::DEFAULT_DEVICE.to_owned(),
        connected_at: time::OffsetDateTime::now_utc(),
    }
}

pub async fn presence_tracks_connections(b: &dyn Backend) {
    let pa = b.presence("node-a").await;
    let pb = b.presence("node-b").await;
    let alice = user();
    let before = pa.online_users().await.unwrap();
    let (c1, c2) = (conn(&alice, "node-a"), conn(&alice, "node-b"));
    pa.add(&c1).await.unwrap();
    pb.add(&c2).await.unwrap();
    let mut seen = pa.connections(&alice).await.unwrap();
    seen.sort_by_key(|c| c.node_id.clone());
    assert_eq!(seen, vec![c1.clone(), c2.clone()]);
    assert_eq!(pb.online_users().await.unwrap(), before + 1);
    pa.remove(&c1).await.unwrap();
    assert_eq!(pb.connections(&alice).await.unwrap(), vec![c2.clone()]);
    pb.remove(&c2).await.unwrap();
    assert!(pa.connections(&alice).await.unwrap().is_empty());
    assert_eq!(pa.online_users().await.unwrap(), before);
}

/// Instantiates the suite as `#[tokio::test]`s. `$make` is an async
/// expression giving something that implements [`Backend`].
#[macro_export]
macro_rules! backend_suite {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $make.await;
                $crate::testkit::$case(&backend).await;
            }
        )*
    };
    ($make:expr) => {
        $crate::backend_suite!($make;
            store_assigns_gap_free_seqs,
            store_keeps_the_order_appends_were_made_in,
            store_reads_in_order_and_pages,
            store_streams_are_independent,
            store_cursors_only_move_forward,
            store_keeps_max_entries,
            broker_delivers_to_subscribers_only,
            broker_subscribes_many_users_at_once,
            broker_keeps_stream_order,
            broker_all_stream_reaches_every_node,
            broker_user_on_two_nodes,
            presence_tracks_connections,
            idempotency_returns_the_first_outcome,
            idempotency_conflicts_on_another_body,
            idempotency_in_progress_until_released,
            idempotency_is_shared_between_nodes,
            idempotency_expires_after_its_window,
            idempotency_one_of_concurrent_claims_wins,
            idempotency_rejects_invalid_keys,
            topics_subscribe_and_unsubscribe,
            topics_subscribers_in_byte_order,
            topics_subscribers_page_without_gap_or_repeat,
            topics_reject_invalid_topics_and_users,
            topics_cap_per_user,
            marks_by_each_selector,
            counts_equal_a_recount_under_concurrent_appends_and_marks,
            history_pages_without_gap_or_repeat,
            announcements_are_stored_once_with_state_per_user,
            read_state_commits_compare_and_set,
            retention_keeps_counts_equal_to_a_recount,
            expired_messages_leave_counts_history_and_marks,
            categories_without_badge_are_listed_not_totalled,
            an_expired_message_dropped_later_is_uncounted_once,
            a_mark_right_after_an_expiry_keeps_counts_equal_to_a_recount,
            marks_on_a_full_inbox_under_traffic_succeed,
            blocklist_blocks_and_unblocks,
            store_appends_each_id_once,
            fanout_reaches_each_subscriber_once,
            fanout_publish_is_idempotent_and_validated,
            conversations_both_directions_with_receipts,
            conversations_of_a_blocked_sender_stay_empty,
            schedule_delivers_once_when_due,
            schedule_lease_of_a_dead_node_is_taken_over_once,
            schedule_concurrent_claims_never_overlap,
            schedule_cancel_and_status,
            schedule_validates_and_keys_give_the_first_outcome,
            collapse_replaces_the_unread_item_of_its_group,
            collapse_counts_a_group_once_under_concurrent_sends,
            collapse_applies_in_each_subscribers_inbox_of_a_publish,
            tags_filter_history_marks_and_counts,
            unread_by_severity_follows_every_change,
            unread_by_severity_is_exact_under_concurrent_marks,
            unread_by_severity_of_announcements_follows_every_change,
            preferences_merge_over_defaults_and_reach_every_node,
            preferences_refuse_bad_input_and_write_nothing,
            preferences_keep_muted_messages_out,
            snooze_leaves_the_counts_then_comes_back_unread,
            snooze_is_cancelled_by_read_archive_and_delete,
            snooze_validates_until,
            snooze_wakes_once_across_nodes_and_after_a_death,
            snooze_counts_equal_a_recount_under_concurrent_marks,
            snooze_wake_up_survives_a_node_dying_at_its_commit,
            snooze_committed_while_a_waker_holds_the_user_is_kept,
            webhooks_fire_once_for_an_unread_message,
            webhooks_follow_state_preferences_and_quiet_hours,
            webhooks_retry_then_die_and_are_revived,
            webhooks_are_created_once_across_nodes,
            webhooks_follow_topic_publishes,
            webhooks_past_max_pending_are_created_dead,
            webhooks_breaker_opens_probes_and_closes,
            actions_act_marks_read_once_and_pushes_changed,
            actions_first_act_wins_under_concurrency,
            actions_raise_one_message_action_webhook,
            actions_webhook_waits_for_its_act_then_is_dropped,
            actions_webhook_rearms_after_a_failed_act,
            webhooks_follow_announcements_through_the_audience,
            user_data_export_lists_everything_and_erase_empties_it,
            user_data_export_streams_a_large_inbox_page_by_page,
            user_data_erase_racing_sends_keeps_or_erases_each_whole,
        );
    };
}
