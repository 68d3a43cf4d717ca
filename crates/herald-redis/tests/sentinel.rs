//! The behavioural suite through Redis Sentinel: the backend is given only
//! the Sentinel's address (`redis-sentinel://...?sentinelServiceName=herald`)
//! and finds the primary through it.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use herald_core::testkit::{draft, user};
use herald_core::{Retention, StreamKey};
use herald_redis::RedisBackend;
use herald_testing::RedisSentinel;

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

/// The primary is killed and restarted on its port (no failover: there is
/// no replica). The broker, connected through the Sentinel, asks it for the
/// primary again, resubscribes, resyncs, and delivers new appends. Has its
/// own Sentinel, because it kills the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_delivers_after_primary_restart_via_sentinel() {
    let mut sentinel = RedisSentinel::start();
    let settings = common::fast_failing(sentinel.url());
    let backend = RedisBackend::connect(settings, "n1", Retention::default(), common::HEARTBEAT)
        .await
        .unwrap();
    common::assert_broker_survives_restart(&backend, || {
        sentinel.primary_mut().kill();
        sentinel.primary_mut().restart();
    })
    .await;
    // Still the same primary: nothing failed over.
    assert_eq!(
        sentinel.master_addr(),
        Some(("127.0.0.1".to_owned(), sentinel.primary().port()))
    );
    backend.shutdown().await;
}

/// The primary dies and the Sentinel promotes the replica: the backend
/// follows it (store, broker resubscription and resync), and what was
/// stored before the failover is still there, seqs going on without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_follows_a_failover_to_the_replica() {
    let mut sentinel = RedisSentinel::start_with_replica();
    let replica_port = sentinel.replica().unwrap().port();
    let settings = common::fast_failing(sentinel.url());
    let backend = RedisBackend::connect(settings, "n1", Retention::default(), common::HEARTBEAT)
        .await
        .unwrap();
    let store = backend.store();
    let key = StreamKey::inbox(user());
    for body in ["one", "two"] {
        store.append(&key, draft(body)).await.unwrap();
    }
    // Replication is asynchronous: make sure the replica has them.
    assert_eq!(
        sentinel.primary().command("WAIT 1 5000").as_deref(),
        Some(":1")
    );
    common::assert_broker_survives_restart(&backend, || sentinel.primary_mut().kill()).await;
    // The promoted replica takes writes before the sentinel reports it
    // (`+switch-master` ends the failover, on the sentinel's next timer
    // tick): wait for the report instead of reading it once.
    let promoted = Some(("127.0.0.1".to_owned(), replica_port));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sentinel.master_addr() != promoted {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sentinel still reports {:?} as the primary",
            sentinel.master_addr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = store.append(&key, draft("three")).await.unwrap();
    assert_eq!(m.seq, 3);
    let bodies: Vec<String> = store
        .read_after(&key, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["one", "two", "three"]);
    backend.shutdown().await;
}
