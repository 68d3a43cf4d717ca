//! The behavioural suite through Redis Sentinel: the backend is given only
//! the Sentinel's address (`redis-sentinel://...?sentinelServiceName=herald`)
//! and finds the primary through it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use herald_core::testkit::{draft, user};
use herald_core::{BrokerSink, Delivery, Retention, StreamKey};
use herald_redis::harness::RedisSentinel;
use herald_redis::{RedisBackend, RedisSettings};
use tokio::sync::{mpsc, Notify};

fn sentinel() -> &'static RedisSentinel {
    static SENTINEL: OnceLock<RedisSentinel> = OnceLock::new();
    SENTINEL.get_or_init(RedisSentinel::start)
}

async fn backend() -> common::TestBackend {
    common::TestBackend::new(sentinel().url())
}

herald_core::backend_suite!(backend());

/// The shared suite's data really lands on the primary behind the Sentinel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_url_reaches_the_primary() {
    let sentinel = sentinel();
    assert_eq!(
        sentinel.master_addr(),
        Some(("127.0.0.1".to_owned(), sentinel.primary().port()))
    );
    let backend = backend().await;
    let prefix = backend.settings.key_prefix.clone();
    let store = backend.connect("store", Retention::default()).await.store();
    let alice = user();
    let key = StreamKey::inbox(&alice);
    store.append(&key, draft("hello")).await.unwrap();
    let seq = sentinel
        .primary()
        .command(&format!("GET {prefix}:{{u:{alice}}}:seq"));
    assert_eq!(seq.as_deref(), Some("1"));
}

/// Records deliveries and counts resyncs.
struct Sink {
    tx: mpsc::UnboundedSender<Arc<Delivery>>,
    resyncs: AtomicUsize,
    resynced: Notify,
}

impl BrokerSink for Sink {
    fn deliver(&self, delivery: Arc<Delivery>) {
        let _ = self.tx.send(delivery);
    }
    fn resync(&self) {
        self.resyncs.fetch_add(1, Ordering::SeqCst);
        self.resynced.notify_waiters();
    }
}

/// The primary is killed and restarted on its port (no failover: there is
/// no replica). The broker, connected through the Sentinel, asks it for the
/// primary again, resubscribes, resyncs, and delivers new appends. Has its
/// own Sentinel, because it kills the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_delivers_after_primary_restart_via_sentinel() {
    let mut sentinel = RedisSentinel::start();
    let settings = RedisSettings {
        key_prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
        command_timeout: Duration::from_millis(500),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
        ..RedisSettings::new(sentinel.url())
    };
    let backend = RedisBackend::connect(settings, "n1", Retention::default(), common::HEARTBEAT)
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = Arc::new(Sink {
        tx,
        resyncs: AtomicUsize::new(0),
        resynced: Notify::new(),
    });
    let broker = backend.broker(sink.clone()).await.unwrap();
    let store = backend.store();
    let alice = user();
    let key = StreamKey::inbox(&alice);
    broker
        .subscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();
    let m = store.append(&key, draft("before")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.message, m);

    sentinel.primary_mut().kill();
    let resynced = sink.resynced.notified();
    sentinel.primary_mut().restart();
    tokio::time::timeout(Duration::from_secs(20), async {
        if sink.resyncs.load(Ordering::SeqCst) == 0 {
            resynced.await;
        }
    })
    .await
    .expect("resync after the subscriber reconnected through the sentinel");
    // Still the same primary: nothing failed over.
    assert_eq!(
        sentinel.master_addr(),
        Some(("127.0.0.1".to_owned(), sentinel.primary().port()))
    );

    // The restarted primary lost everything (no persistence); what matters
    // is that a new append reaches the sink.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        match store.append(&key, draft("after")).await {
            Ok(m) => break m,
            Err(e) => assert!(Instant::now() < deadline, "append after restart: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    loop {
        let d = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("delivery after restart")
            .unwrap();
        if d.message.id == m.id {
            assert_eq!(d.key, key);
            break;
        }
    }
    backend.shutdown().await;
}
