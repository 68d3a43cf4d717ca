//! What happens when Redis goes away and comes back, and when a node dies.
//! Each test starts its own redis-server, because these tests kill it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_core::testkit::{draft, user};
use herald_core::{ConnInfo, CoreError, Presence, Retention, StreamKey};
use herald_redis::{ReapStage, RedisBackend};
use herald_testing::RedisServer;
use tokio::task::JoinHandle;

async fn connect(server: &RedisServer) -> RedisBackend {
    let settings = common::fast_failing(server.url());
    RedisBackend::connect(
        settings,
        "n1",
        Retention::default(),
        Duration::from_secs(10),
    )
    .await
    .unwrap()
}

/// Polls `f` until it gives Some, or panics after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_resubscribes_and_resyncs_after_redis_restart() {
    let mut server = RedisServer::start();
    let backend = connect(&server).await;
    common::assert_broker_survives_restart(&backend, || server.restart()).await;
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_with_unavailable_while_redis_is_down() {
    let mut server = RedisServer::start();
    let backend = connect(&server).await;
    let store = backend.store();
    let presence = backend.presence();
    let key = StreamKey::inbox(user());
    store.append(&key, draft("x")).await.unwrap();
    server.kill();

    for _ in 0..3 {
        let started = Instant::now();
        let err = store.append(&key, draft("y")).await.unwrap_err();
        assert!(matches!(err, CoreError::Unavailable(_)), "{err:?}");
        let err = store.read_after(&key, 0, 10).await.unwrap_err();
        assert!(matches!(err, CoreError::Unavailable(_)), "{err:?}");
        let err = presence.online_users().await.unwrap_err();
        assert!(matches!(err, CoreError::Unavailable(_)), "{err:?}");
        // Three calls, each bounded by the 500 ms command timeout.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    server.restart();
    eventually("store works again", Duration::from_secs(10), || {
        let store = store.clone();
        let key = key.clone();
        async move { store.append(&key, draft("z")).await.ok() }
    })
    .await;
    backend.shutdown().await;
}

fn conn(user: &str, node: &str) -> ConnInfo {
    ConnInfo {
        conn_id: uuid::Uuid::new_v4(),
        user_id: user.to_owned(),
        node_id: node.to_owned(),
        device: herald_core::DEFAULT_DEVICE.to_owned(),
        connected_at: time::OffsetDateTime::now_utc(),
    }
}

/// Calls [`Presence::heartbeat`] and then [`Presence::online_users`] (which
/// reaps dead nodes) every `every`, as a gateway node's heartbeat loop
/// does, until the handle is aborted.
fn spawn_heartbeat(presence: Arc<dyn Presence>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = presence.heartbeat().await {
                eprintln!("presence heartbeat failed: {err}");
            }
            if let Err(err) = presence.online_users().await {
                eprintln!("presence reap failed: {err}");
            }
        }
    })
}

/// Nodes `node-a` and `node-b` on `server` with heartbeat `beat`; only b
/// beats by itself (the test drives a's heartbeats). Returns the key prefix,
/// the nodes, and b's heartbeat loop (abort it before `b.shutdown()`).
async fn two_nodes(
    server: &RedisServer,
    beat: Duration,
) -> (String, RedisBackend, RedisBackend, JoinHandle<()>) {
    let (prefix, a, b) = two_silent_nodes(server, beat).await;
    let b_beats = spawn_heartbeat(b.presence(), beat);
    (prefix, a, b, b_beats)
}

/// Nodes `node-a` and `node-b` on `server` with heartbeat `beat`, neither
/// beating by itself; and their key prefix.
async fn two_silent_nodes(
    server: &RedisServer,
    beat: Duration,
) -> (String, RedisBackend, RedisBackend) {
    let settings = common::fast_failing(server.url());
    let prefix = settings.key_prefix.clone();
    let a = RedisBackend::connect(settings.clone(), "node-a", Retention::default(), beat)
        .await
        .unwrap();
    let b = RedisBackend::connect(settings, "node-b", Retention::default(), beat)
        .await
        .unwrap();
    (prefix, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_drops_a_node_that_stops_heartbeating() {
    let server = RedisServer::start();
    let beat = Duration::from_millis(200);
    let (prefix, a, b, b_beats) = two_nodes(&server, beat).await;
    let (pa, pb) = (a.presence(), b.presence());
    let (alice, bob) = (user(), user());
    let (ca, cb) = (conn(&alice, "node-a"), conn(&bob, "node-b"));
    // Alice has a tab on each node; bob only on node b.
    let ca2 = conn(&alice, "node-b");
    pa.add(&ca).await.unwrap();
    pb.add(&cb).await.unwrap();
    pb.add(&ca2).await.unwrap();
    assert_eq!(pb.online_users().await.unwrap(), 2);
    assert_eq!(pb.connections(&alice).await.unwrap().len(), 2);

    // Node a "dies" (kill -9): it simply never beats again.
    pa.heartbeat().await.unwrap();
    let last_beat = Instant::now();
    drop(pa);
    drop(a);

    eventually("alice's node-a tab gone", beat * 4, || {
        let pb = pb.clone();
        let alice = alice.clone();
        async move {
            let conns = pb.connections(&alice).await.unwrap();
            (conns.len() == 1).then_some(())
        }
    })
    .await;
    let gone_after = last_beat.elapsed();
    assert!(
        gone_after <= beat * 2 + Duration::from_millis(150),
        "dead node still counted {gone_after:?} after its last heartbeat"
    );
    assert_eq!(pb.connections(&alice).await.unwrap(), vec![ca2.clone()]);
    assert_eq!(pb.online_users().await.unwrap(), 2);

    // Once alice's other tab leaves, only bob is online; node a's set was
    // reaped by b's heartbeat, with nobody cleaning by hand.
    pb.remove(&ca2).await.unwrap();
    assert_eq!(pb.online_users().await.unwrap(), 1);
    eventually("node-a reaped", beat * 5, || {
        let reply = server.command(&format!("SCARD {prefix}:{{n:node-a}}:conns"));
        async move { (reply.as_deref() == Some(":0")).then_some(()) }
    })
    .await;
    // Node b keeps heartbeating, so bob stays.
    tokio::time::sleep(beat * 3).await;
    assert_eq!(pb.connections(&bob).await.unwrap(), vec![cb]);
    b_beats.abort();
    b.shutdown().await;
}

/// A node that stalls past two heartbeats is reaped by the others; when it
/// beats again, its heartbeat says so (once), and what it adds again counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_node_learns_it_was_reaped() {
    let server = RedisServer::start();
    // Long enough that a loaded CI machine does not stall a beat by accident.
    let beat = Duration::from_millis(300);
    let (_, a, b, b_beats) = two_nodes(&server, beat).await;
    let (pa, pb) = (a.presence(), b.presence());
    let alice = user();
    let ca = conn(&alice, "node-a");
    pa.add(&ca).await.unwrap();
    // Regular beats report nothing (the first may, if starting node b took
    // longer than two intervals).
    let _ = pa.heartbeat().await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(beat / 3).await;
        assert!(!pa.heartbeat().await.unwrap());
    }
    // Node a stalls: b's heartbeats reap its entries.
    eventually("alice reaped", beat * 10, || {
        let pb = pb.clone();
        let alice = alice.clone();
        async move {
            pb.connections(&alice)
                .await
                .unwrap()
                .is_empty()
                .then_some(())
        }
    })
    .await;
    // Back: the first heartbeat after the reaper let go says "register again".
    eventually("lapse reported", beat * 10, || {
        let pa = pa.clone();
        async move { pa.heartbeat().await.unwrap().then_some(()) }
    })
    .await;
    assert!(!pa.heartbeat().await.unwrap(), "reported once");
    pa.add(&ca).await.unwrap();
    // It stays: nobody reaps a node that beats.
    for _ in 0..5 {
        tokio::time::sleep(beat / 3).await;
        assert!(!pa.heartbeat().await.unwrap());
    }
    assert_eq!(pb.connections(&alice).await.unwrap(), vec![ca]);
    b_beats.abort();
    a.shutdown().await;
    b.shutdown().await;
}

/// A reaper reads a batch of a dead node's entries, then deletes them; a
/// node that came back meanwhile (a slow reaper whose lock expired) may
/// have added some of them again. Those stay, in the user's hash and in the
/// node's set: the race is forced with the reap hook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_keeps_an_entry_added_again_after_it_read_it() {
    race_the_reaper(ReapStage::Read).await;
}

/// The same race one step later: the node adds an entry again after the
/// reaper deleted it and before it removed its member from the node's set.
/// The entry stays findable: its member is put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_puts_back_the_pointer_of_an_entry_added_again_after_its_delete() {
    race_the_reaper(ReapStage::Deleted).await;
}

/// Node b holds alice's and bob's connections and stops beating; node a
/// reaps it, and at `stage` of the batch node b comes back and adds alice's
/// connection again. Bob's is reaped; alice's stays, with its member.
async fn race_the_reaper(stage: ReapStage) {
    let server = RedisServer::start();
    let beat = Duration::from_millis(100);
    let (prefix, a, b) = two_silent_nodes(&server, beat).await;
    let (pa, pb) = (a.presence(), b.presence());
    let (alice, bob) = (user(), user());
    let (kept, reaped) = (conn(&alice, "node-b"), conn(&bob, "node-b"));
    pb.add(&kept).await.unwrap();
    pb.add(&reaped).await.unwrap();
    eventually("node-b given up", beat * 20, || {
        let reply = server.command(&format!("EXISTS {prefix}:{{n:node-b}}:alive"));
        async move { (reply.as_deref() == Some(":0")).then_some(()) }
    })
    .await;
    let again = (pb.clone(), kept.clone());
    a.redis_presence().set_reap_hook(Arc::new(move |at| {
        let (pb, kept) = again.clone();
        Box::pin(async move {
            if at == stage {
                pb.heartbeat().await.unwrap();
                pb.add(&kept).await.unwrap()
            }
        })
    }));
    pa.online_users().await.unwrap();
    let redis = |command: &str, key: &str, field: String| {
        server.command(&format!("{command} {prefix}:{key} {field}"))
    };
    let entry = |user: &str, conn: &ConnInfo| {
        redis(
            "HEXISTS",
            &format!("{{u:{user}}}:conns"),
            conn.conn_id.to_string(),
        )
    };
    assert_eq!(entry(&bob, &reaped).as_deref(), Some(":0"), "not reaped");
    assert_eq!(entry(&alice, &kept).as_deref(), Some(":1"), "deleted");
    let member = redis(
        "SISMEMBER",
        "{n:node-b}:conns",
        format!("{}:{alice}", kept.conn_id),
    );
    assert_eq!(member.as_deref(), Some(":1"), "its reaper pointer is gone");
    assert_eq!(pa.connections(&alice).await.unwrap(), vec![kept]);
    a.shutdown().await;
    b.shutdown().await;
}

/// Whether `server` holds this build's library of functions.
fn holds_library(server: &RedisServer) -> bool {
    let listed = server.command(&format!(
        "FUNCTION LIST LIBRARYNAME {}",
        herald_redis::library_name()
    ));
    listed.as_deref() == Some("*1")
}

/// The library is loaded at connect, and again by the first call that
/// finds its function missing (here after `FUNCTION FLUSH`; a restart
/// without persistence is the same), whichever function that is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_library_is_loaded_again_by_the_next_call() {
    let server = RedisServer::start();
    let backend = connect(&server).await;
    assert!(holds_library(&server), "not loaded at connect");
    let store = backend.store();
    let key = StreamKey::inbox(user());

    server.command("FUNCTION FLUSH").unwrap();
    assert!(!holds_library(&server));
    assert_eq!(store.append(&key, draft("a")).await.unwrap().seq, 1);
    assert!(holds_library(&server), "not loaded again by the append");

    server.command("FUNCTION FLUSH").unwrap();
    let read = store.read_after(&key, 0, 10).await.unwrap();
    assert_eq!(read.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1]);

    server.command("FUNCTION FLUSH").unwrap();
    let claim = backend
        .idempotency()
        .claim("scope", "key", "fingerprint", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(claim, herald_core::Claim::Fresh), "{claim:?}");
    assert!(holds_library(&server));
    backend.shutdown().await;
}
