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

use crate::{Broker, BrokerSink, ConnInfo, Delivery, Draft, Presence, Retention, Store, StreamKey};

/// Builds the parts of one backend for a test.
#[async_trait]
pub trait Backend: Send + Sync {
    async fn store(&self, retention: Retention) -> Arc<dyn Store>;
    async fn broker(&self, node: &str, sink: Arc<dyn BrokerSink>) -> Arc<dyn Broker>;
    async fn presence(&self, node: &str) -> Arc<dyn Presence>;
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
    Draft::new(Category::Remind, body)
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
/// connects batched by `Subscriptions`) all get their messages once the
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
        );
    };
}
