//! The behavioural suite against one standalone redis-server.

mod common;

use std::sync::OnceLock;

use herald_testing::RedisServer;

fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

async fn backend() -> common::TestBackend {
    common::TestBackend::new(server().url())
}

herald_core::backend_suite!(backend());

/// Retention by age (the suite covers max entries only): old entries leave
/// the log, the seq counter stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_drops_entries_older_than_max_age() {
    use std::time::{Duration, Instant};

    use herald_core::testkit::{draft, user};
    use herald_core::{Retention, StreamKey};

    let backend = backend().await;
    let max_age = Duration::from_millis(300);
    let store = backend
        .connect(
            "store",
            Retention {
                max_age,
                ..Retention::default()
            },
        )
        .await
        .store();
    let key = StreamKey::inbox(user());
    store.append(&key, draft("old")).await.unwrap();
    let started = Instant::now();
    loop {
        let kept = store.read_after(&key, 0, 10).await.unwrap();
        if kept.is_empty() {
            break;
        }
        assert!(started.elapsed() < max_age * 10, "entry never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() >= max_age - Duration::from_millis(50));
    let m = store.append(&key, draft("new")).await.unwrap();
    assert_eq!(m.seq, 2);
    let kept = store.read_after(&key, 0, 10).await.unwrap();
    assert_eq!(kept.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2]);
    assert_eq!(store.last_seq(&key).await.unwrap(), 2);
}

/// Group commit: concurrent appends through one backend share script calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_gap_free_and_published_in_order() {
    common::concurrent_appends_are_gap_free_and_published_in_order(&backend().await).await;
}
