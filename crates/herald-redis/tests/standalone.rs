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

/// A store with this retention on the test server, and its keys' prefix.
async fn store_with(
    retention: herald_core::Retention,
) -> (std::sync::Arc<dyn herald_core::Store>, String) {
    let backend = backend().await;
    let prefix = backend.settings.key_prefix.clone();
    (backend.connect("store", retention).await.store(), prefix)
}

/// The PTTL of `key` on the test server, in ms.
fn pttl(key: &str) -> i64 {
    server()
        .command(&format!("PTTL {key}"))
        .unwrap()
        .trim_start_matches(':')
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_job_is_taken_over_after_its_worker_dies() {
    common::fanout_job_is_taken_over_after_its_worker_dies(&backend().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_are_forgotten_and_holders_kept() {
    common::idle_workers_are_forgotten_and_holders_kept(&backend().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_nodes_consumer_goes_once_its_job_is_taken_over() {
    common::dead_nodes_consumer_goes_once_its_job_is_taken_over(&backend().await).await;
}

/// Retention by age (the suite covers max entries only): old entries leave
/// the log, the seq counter stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_drops_entries_older_than_max_age() {
    use std::time::{Duration, Instant};

    use herald_core::testkit::{draft, user};
    use herald_core::{Retention, StreamKey};

    let max_age = Duration::from_millis(300);
    let (store, _) = store_with(Retention {
        max_age,
        ..Retention::default()
    })
    .await;
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

/// Records which users' counts changed.
struct CountsSink(tokio::sync::mpsc::UnboundedSender<String>);

impl herald_core::BrokerSink for CountsSink {
    fn deliver(&self, _delivery: std::sync::Arc<herald_core::Delivery>) {}
    fn resync(&self) {}
    fn receipt(&self, _user: &str, _receipt: &herald_protocol::Receipt) {}
    fn counts_changed(&self, user: &str) {
        let _ = self.0.send(user.to_owned());
    }
}

/// Inbox counts per category, unread and unseen, without zero entries.
type PerCategory = (Vec<(String, i64)>, Vec<(String, i64)>);

/// What the kept counts should be at `now`: a recount of the retained inbox
/// messages not expired by `now`, with the stored read state.
async fn recount_at(
    store: &dyn herald_core::Store,
    user: &str,
    now: time::OffsetDateTime,
) -> PerCategory {
    use std::collections::BTreeMap;

    use herald_core::StreamKey;
    use herald_protocol::Stream;

    let state = store.read_state(user).await.unwrap();
    let marks = state.marks(Stream::Inbox);
    let mut unread: BTreeMap<String, i64> = BTreeMap::new();
    let mut unseen: BTreeMap<String, i64> = BTreeMap::new();
    for m in store
        .read_after(&StreamKey::inbox(user), 0, 10_000)
        .await
        .unwrap()
    {
        if m.expired(now) {
            continue;
        }
        let flags = marks.flags(m.seq);
        if flags.counts_unread() {
            *unread.entry(m.category.to_string()).or_default() += 1;
        }
        if flags.counts_unseen() {
            *unseen.entry(m.category.to_string()).or_default() += 1;
        }
    }
    (unread.into_iter().collect(), unseen.into_iter().collect())
}

async fn recount(store: &dyn herald_core::Store, user: &str) -> PerCategory {
    recount_at(store, user, time::OffsetDateTime::now_utc()).await
}

/// The kept counts at `now` in `recount`'s form.
async fn kept_at(
    store: &dyn herald_core::Store,
    user: &str,
    now: time::OffsetDateTime,
) -> PerCategory {
    let (kept, _) = store.user_counts(user, now).await.unwrap();
    let nonzero = |m: std::collections::BTreeMap<String, i64>| {
        m.into_iter().filter(|(_, n)| *n != 0).collect()
    };
    (nonzero(kept.unread), nonzero(kept.unseen))
}

async fn kept(store: &dyn herald_core::Store, user: &str) -> PerCategory {
    kept_at(store, user, time::OffsetDateTime::now_utc()).await
}

/// `[(name, n)]` as owned pairs.
fn per(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
}

/// The change that turns `old` into `new`, with the count deltas a recount
/// of `messages` gives.
fn change(
    old: &herald_core::ReadState,
    new: &herald_core::ReadState,
    messages: &[herald_protocol::Message],
) -> herald_core::ReadChange {
    use herald_protocol::Stream;

    let mut change = herald_core::ReadChange {
        expect_version: old.version,
        updates: old.diff(new),
        ..Default::default()
    };
    for m in messages {
        let (a, b) = (
            old.marks(Stream::Inbox).flags(m.seq),
            new.marks(Stream::Inbox).flags(m.seq),
        );
        let unread = b.counts_unread() as i64 - a.counts_unread() as i64;
        let unseen = b.counts_unseen() as i64 - a.counts_unseen() as i64;
        if unread != 0 || unseen != 0 {
            change.deltas.push(herald_core::CountDelta {
                seq: m.seq,
                category: m.category.to_string(),
                unread,
                unseen,
                severity: m.severity,
            });
        }
    }
    change
}

/// read_before pages backwards, find goes through the id index, bounds
/// follows retention; on an inbox and on the `all` stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_find_and_bounds() {
    use herald_core::testkit::{draft, user};
    use herald_core::{Retention, StreamKey};

    let backend = backend().await;
    let conn = backend.connect("store", Retention::default()).await;
    let store = conn.store();
    for key in [StreamKey::inbox(user()), StreamKey::All] {
        assert_eq!(store.bounds(&key).await.unwrap(), (1, 0));
        assert!(store.read_before(&key, None, 10).await.unwrap().is_empty());
        let mut appended = Vec::new();
        for i in 0..5 {
            appended.push(store.append(&key, draft(&format!("m{i}"))).await.unwrap());
        }
        let seqs = |ms: Vec<herald_protocol::Message>| ms.iter().map(|m| m.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(store.read_before(&key, None, 2).await.unwrap()),
            [5, 4]
        );
        assert_eq!(
            seqs(store.read_before(&key, Some(4), 10).await.unwrap()),
            [3, 2, 1]
        );
        assert_eq!(
            seqs(store.read_before(&key, Some(3), 1).await.unwrap()),
            [2]
        );
        assert_eq!(
            seqs(store.read_before(&key, Some(99), 2).await.unwrap()),
            [5, 4]
        );
        assert!(store
            .read_before(&key, Some(1), 10)
            .await
            .unwrap()
            .is_empty());
        assert!(store.read_before(&key, None, 0).await.unwrap().is_empty());
        assert_eq!(
            store.read_before(&key, None, 10).await.unwrap()[0],
            appended[4]
        );

        let found = store
            .find(
                &key,
                &[appended[3].id, uuid::Uuid::now_v7(), appended[0].id],
            )
            .await
            .unwrap();
        assert_eq!(found, vec![appended[3].clone(), appended[0].clone()]);
        assert!(store.find(&key, &[]).await.unwrap().is_empty());
        assert_eq!(store.bounds(&key).await.unwrap(), (1, 5));
    }

    // Retention by count: bounds move, the index forgets what left.
    let trimmed = backend
        .connect(
            "trimmed",
            Retention {
                max_entries: 3,
                ..Retention::default()
            },
        )
        .await
        .store();
    let key = StreamKey::inbox(user());
    let mut appended = Vec::new();
    for i in 0..7 {
        appended.push(trimmed.append(&key, draft(&format!("t{i}"))).await.unwrap());
    }
    assert_eq!(trimmed.bounds(&key).await.unwrap(), (5, 7));
    let ids: Vec<uuid::Uuid> = appended.iter().map(|m| m.id).collect();
    let found = trimmed.find(&key, &ids).await.unwrap();
    assert_eq!(found, appended[4..].to_vec());
    let seqs: Vec<u64> = trimmed
        .read_before(&key, Some(7), 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, [6, 5]);
    let prefix = &backend.settings.key_prefix;
    let user = key.user().unwrap();
    let card = server().command(&format!("ZCARD {prefix}:{{u:{user}}}:ids"));
    assert_eq!(
        card.as_deref().map(|c| c.trim_start_matches(':')),
        Some("3"),
        "the index holds the retained only"
    );
    conn.shutdown().await;
}

/// Compare-and-set on the version; a commit reaches the user's nodes as a
/// counts-changed event; kept counts follow appends and commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_state_commits_and_kept_counts() {
    use std::time::Duration;

    use herald_core::testkit::{draft, user};
    use herald_core::{Draft, Flags, ReadChange, Retention, StreamKey};
    use herald_protocol::{Category, MarkState, Stream};

    let backend = backend().await;
    let conn = backend.connect("node", Retention::default()).await;
    let store = conn.store();
    let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let broker = conn
        .broker(std::sync::Arc::new(CountsSink(tx)))
        .await
        .unwrap();
    let alice = user();
    broker
        .subscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();
    let inbox = StreamKey::inbox(&alice);

    let now = time::OffsetDateTime::now_utc();
    let fresh = store.user_counts(&alice, now).await.unwrap();
    assert_eq!(fresh, Default::default());
    assert_eq!(store.read_state(&alice).await.unwrap(), Default::default());

    let mut messages = Vec::new();
    for i in 0..3 {
        messages.push(store.append(&inbox, draft(&format!("r{i}"))).await.unwrap());
    }
    for i in 0..2 {
        let d = Draft::new(Category::SYSTEM, format!("s{i}"));
        messages.push(store.append(&inbox, d).await.unwrap());
    }
    store.append(&StreamKey::All, draft("all")).await.unwrap();
    let (counts, state) = store.user_counts(&alice, now).await.unwrap();
    assert_eq!(counts.last_seq, 5);
    assert_eq!(state, Default::default());
    assert_eq!(
        counts.unread.into_iter().collect::<Vec<_>>(),
        per(&[("remind", 3), ("system", 2)])
    );
    assert_eq!(
        counts.unseen.into_iter().collect::<Vec<_>>(),
        per(&[("remind", 3), ("system", 2)])
    );

    // Read up to 2, seen up to 3, archive 5, and an exception on `all`.
    let old = store.read_state(&alice).await.unwrap();
    let mut new = old.clone();
    new.marks_mut(Stream::Inbox).raise_seen(3);
    new.marks_mut(Stream::Inbox).raise_read(2);
    new.marks_mut(Stream::Inbox)
        .set(5, Flags::default().apply(MarkState::Archived));
    new.marks_mut(Stream::All)
        .set(1, Flags::default().apply(MarkState::Read));
    let commit = change(&old, &new, &messages);
    assert_eq!(commit.deltas.iter().map(|d| d.unseen).sum::<i64>(), -4);
    assert!(store.commit_read_state(&alice, &commit).await.unwrap());
    let got = tokio::time::timeout(Duration::from_secs(5), changed.recv())
        .await
        .expect("counts-changed event within 5 s")
        .unwrap();
    assert_eq!(got, alice);
    let stored = store.read_state(&alice).await.unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.streams, new.streams);
    assert_eq!(kept(&*store, &alice).await, recount(&*store, &alice).await);
    assert_eq!(
        kept(&*store, &alice).await,
        (per(&[("remind", 1), ("system", 1)]), per(&[("system", 1)]))
    );
    let (_, state) = store.user_counts(&alice, now).await.unwrap();
    assert_eq!(state, stored, "user_counts reads the read state too");

    // A commit against the old version does nothing and tells nobody.
    let mut other = old.clone();
    other.marks_mut(Stream::Inbox).raise_read(5);
    let stale = change(&old, &other, &messages);
    assert!(!store.commit_read_state(&alice, &stale).await.unwrap());
    assert_eq!(store.read_state(&alice).await.unwrap(), stored);
    assert_eq!(kept(&*store, &alice).await, recount(&*store, &alice).await);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), changed.recv())
            .await
            .is_err(),
        "no event for a refused commit"
    );

    // Unset removes the exception; the version keeps counting.
    let mut next = stored.clone();
    next.marks_mut(Stream::All).exceptions.clear();
    let unset = ReadChange {
        expect_version: 1,
        updates: stored.diff(&next),
        ..Default::default()
    };
    assert!(store.commit_read_state(&alice, &unset).await.unwrap());
    let after = store.read_state(&alice).await.unwrap();
    assert_eq!(after.version, 2);
    assert!(after.marks(Stream::All).exceptions.is_empty());
    conn.shutdown().await;
}

/// Retention by count and by age un-counts what it drops, as a recount
/// would, and forgets the exceptions of dropped seqs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_kept_counts_equal_to_a_recount() {
    use std::time::{Duration, Instant};

    use herald_core::testkit::user;
    use herald_core::{Draft, Flags, Retention, StreamKey};
    use herald_protocol::{Category, MarkState, Stream};

    let (store, _) = store_with(Retention {
        max_entries: 3,
        ..Retention::default()
    })
    .await;
    let alice = user();
    let inbox = StreamKey::inbox(&alice);
    let categories = [Category::REMIND, Category::SYSTEM, Category::MAILBOX];
    let mut messages = Vec::new();
    for i in 0..3 {
        let d = Draft::new(categories[i % 3].clone(), format!("m{i}"));
        messages.push(store.append(&inbox, d).await.unwrap());
    }
    // 1 read (watermark), 2 seen, 3 archived (an exception).
    let old = store.read_state(&alice).await.unwrap();
    let mut new = old.clone();
    let marks = new.marks_mut(Stream::Inbox);
    marks.raise_seen(2);
    marks.raise_read(1);
    marks.set(3, Flags::default().apply(MarkState::Archived));
    assert!(store
        .commit_read_state(&alice, &change(&old, &new, &messages))
        .await
        .unwrap());
    assert_eq!(kept(&*store, &alice).await, recount(&*store, &alice).await);
    for i in 3..8 {
        let d = Draft::new(categories[i % 3].clone(), format!("m{i}"));
        store.append(&inbox, d).await.unwrap();
        assert_eq!(
            kept(&*store, &alice).await,
            recount(&*store, &alice).await,
            "after append {}",
            i + 1
        );
    }
    let state = store.read_state(&alice).await.unwrap();
    assert!(
        state.marks(Stream::Inbox).exceptions.is_empty(),
        "the exception of trimmed seq 3 is gone"
    );
    let (counts, state) = store
        .user_counts(&alice, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(
        (counts.unseen.values().sum::<i64>(), counts.last_seq),
        (3, 8)
    );
    assert_eq!(
        state.version, 1,
        "one commit; trims do not move the version"
    );

    // By age: everything expires, the counts go to zero.
    let max_age = Duration::from_millis(300);
    let (aging, _) = store_with(Retention {
        max_age,
        ..Retention::default()
    })
    .await;
    let bob = user();
    for i in 0..3 {
        let d = Draft::new(categories[i % 3].clone(), format!("a{i}"));
        aging.append(&StreamKey::inbox(&bob), d).await.unwrap();
    }
    assert_eq!(kept(&*aging, &bob).await.1.len(), 3);
    let started = Instant::now();
    loop {
        let (unread, unseen) = kept(&*aging, &bob).await;
        if unread.is_empty() && unseen.is_empty() {
            break;
        }
        assert!(started.elapsed() < max_age * 10, "counts never went down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(aging
        .read_after(&StreamKey::inbox(&bob), 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(aging.bounds(&StreamKey::inbox(&bob)).await.unwrap(), (4, 3));
}

/// The expiry indexes: `user_counts` un-counts an expired inbox message
/// once, as its flags say, keeps its exception and bumps the version;
/// `announcements` lists expired retained seqs without taking them; both
/// drop the members of trimmed seqs; the indexes share the log's PEXPIRE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_indexes_un_count_once_and_follow_retention() {
    use std::time::Duration;

    use herald_core::testkit::user;
    use herald_core::{Draft, Flags, Retention, StreamKey};
    use herald_protocol::{Category, MarkState, Stream};
    use time::OffsetDateTime;

    let (store, prefix) = store_with(Retention {
        max_entries: 3,
        ..Retention::default()
    })
    .await;
    let redis = |cmd: String| {
        server()
            .command(&cmd)
            .map(|r| r.trim_start_matches(':').to_owned())
    };
    let now = OffsetDateTime::now_utc();
    let soon = now + Duration::from_secs(60);
    let expiring = |category: Category, body: &str, at: OffsetDateTime| {
        let mut d = Draft::new(category, body);
        d.expires_at = Some(at);
        d
    };

    let alice = user();
    let inbox = StreamKey::inbox(&alice);
    let exp = format!("{prefix}:{{u:{alice}}}:exp");
    let mut messages = Vec::new();
    for d in [
        expiring(Category::REMIND, "trimmed before it expires", soon),
        expiring(Category::SYSTEM, "expires", soon),
        Draft::new(Category::REMIND, "stays"),
        expiring(
            Category::REMIND,
            "expires later",
            now + Duration::from_secs(3600),
        ),
    ] {
        messages.push(store.append(&inbox, d).await.unwrap());
    }
    assert_eq!(redis(format!("ZCARD {exp}")).as_deref(), Some("3"));
    let ttl: i64 = redis(format!("PTTL {exp}")).unwrap().parse().unwrap();
    assert!(ttl > 0, "the expiry index has the log's PEXPIRE");
    let state = store.read_state(&alice).await.unwrap();
    assert_eq!(state.version, 0, "a count trim does not move the version");

    // Seq 2 seen: it counts unread, not unseen.
    let mut next = state.clone();
    next.marks_mut(Stream::Inbox)
        .set(2, Flags::default().apply(MarkState::Seen));
    assert!(store
        .commit_read_state(&alice, &change(&state, &next, &messages))
        .await
        .unwrap());
    assert_eq!(
        kept_at(&*store, &alice, now).await,
        (per(&[("remind", 2), ("system", 1)]), per(&[("remind", 2)]))
    );
    assert_eq!(store.read_state(&alice).await.unwrap().version, 1);

    // Past the first expiry: seq 2 leaves the counts, once.
    let later = soon + Duration::from_millis(1);
    for _ in 0..2 {
        let counts = kept_at(&*store, &alice, later).await;
        assert_eq!(counts, recount_at(&*store, &alice, later).await);
        assert_eq!(counts, (per(&[("remind", 2)]), per(&[("remind", 2)])));
        let state = store.read_state(&alice).await.unwrap();
        assert_eq!(state.version, 2, "bumped by the expiry, once");
        assert_eq!(
            state.marks(Stream::Inbox).flags(2).level,
            herald_core::Level::Seen,
            "an expired message keeps its exception"
        );
    }
    assert_eq!(
        redis(format!("ZCARD {exp}")).as_deref(),
        Some("1"),
        "the due members left (seq 1 was trimmed, seq 2 taken)"
    );

    // Announcements: listed while retained, never taken.
    let all_exp = format!("{prefix}:{{all}}:exp");
    for d in [
        expiring(Category::ANNOUNCEMENT, "trimmed", soon),
        expiring(Category::ANNOUNCEMENT, "expires", soon),
        Draft::new(Category::ANNOUNCEMENT, "stays"),
        Draft::new(Category::ANNOUNCEMENT, "stays too"),
    ] {
        store.append(&StreamKey::All, d).await.unwrap();
    }
    let range = store.announcements(now).await.unwrap();
    assert_eq!((range.first, range.last, range.expired.len()), (2, 4, 0));
    assert_eq!(redis(format!("ZCARD {all_exp}")).as_deref(), Some("2"));
    for _ in 0..2 {
        let range = store.announcements(later).await.unwrap();
        assert_eq!((range.first, range.last), (2, 4));
        assert_eq!(range.expired, vec![2]);
        assert_eq!(
            redis(format!("ZCARD {all_exp}")).as_deref(),
            Some("1"),
            "trimmed seq 1 left the index, expired seq 2 stays"
        );
    }
    let ttl: i64 = redis(format!("PTTL {all_exp}")).unwrap().parse().unwrap();
    assert!(ttl > 0, "the expiry index has the log's PEXPIRE");
}

/// With max entries 0 nothing is kept: no expiry index, no counts, and the
/// version moves as for any trim (as the in-memory store does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_max_entries_keeps_no_expiry_index() {
    use std::time::Duration;

    use herald_core::testkit::user;
    use herald_core::{Draft, Retention, StreamKey};
    use herald_protocol::Category;
    use time::OffsetDateTime;

    let (store, prefix) = store_with(Retention {
        max_entries: 0,
        ..Retention::default()
    })
    .await;
    let alice = user();
    let mut d = Draft::new(Category::REMIND, "gone at once");
    d.expires_at = Some(OffsetDateTime::now_utc() + Duration::from_secs(1));
    let m = store.append(&StreamKey::inbox(&alice), d).await.unwrap();
    assert_eq!(m.seq, 1);
    let exists = server()
        .command(&format!("EXISTS {prefix}:{{u:{alice}}}:exp"))
        .unwrap();
    assert_eq!(exists, ":0");
    let later = OffsetDateTime::now_utc() + Duration::from_secs(5);
    let (counts, state) = store.user_counts(&alice, later).await.unwrap();
    assert_eq!(counts.last_seq, 1);
    assert!(counts
        .unread
        .values()
        .chain(counts.unseen.values())
        .all(|n| *n == 0));
    assert_eq!(
        state.version, 0,
        "the message left at once; trims do not move the version"
    );
}

/// An announcement is stored once: counting it for many users writes
/// nothing per user (the key count does not grow), and a user's first mark
/// stores that user's marks only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_costs_no_storage_per_user() {
    use herald_core::testkit::{draft, user};
    use herald_core::{Categories, Inbox, Retention, Selector, StreamKey};
    use herald_protocol::{Category, MarkState};

    // A server of its own: DBSIZE counts every key on it.
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let backend = common::TestBackend::new(server.url());
    let store = backend.connect("ann", Retention::default()).await.store();
    let inbox = Inbox::new(store.clone(), Categories::default());
    let mut announcement = draft("maintenance tonight");
    announcement.category = Category::ANNOUNCEMENT;
    let stored = store.append(&StreamKey::All, announcement).await.unwrap();
    let dbsize = || {
        let reply = server.command("DBSIZE").unwrap();
        reply.trim_start_matches(':').parse::<u64>().unwrap()
    };
    let before = dbsize();
    let users: Vec<String> = (0..200).map(|_| user()).collect();
    for u in &users {
        let counts = inbox.counts(u).await.unwrap().counts();
        assert_eq!(counts.unread["announcement"], 1);
    }
    assert_eq!(dbsize(), before, "counting for 200 users stored something");
    let ids = Selector::Ids(vec![stored.id]);
    assert_eq!(
        inbox.mark(&users[0], MarkState::Read, &ids).await.unwrap(),
        1
    );
    assert_eq!(dbsize(), before + 1, "one user's marks: one hash");
    assert_eq!(
        inbox.counts(&users[1]).await.unwrap().counts().unread["announcement"],
        1
    );
}

/// Only an announcement of a severity other than normal is indexed
/// (`{all}:sev`): a normal one writes no key more than before severities
/// existed. The index lives as long as the log may (max age plus the
/// slack), reads skip members retention dropped from the log, and the next
/// severe append removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_severe_announcements_are_indexed_by_severity() {
    use std::time::Duration;

    use herald_core::testkit::draft;
    use herald_core::{Draft, Retention, StreamKey};
    use herald_protocol::{Category, Severity};
    use time::OffsetDateTime;

    let (store, prefix) = store_with(Retention {
        max_entries: 3,
        max_age: Duration::from_secs(160),
    })
    .await;
    let index = format!("{prefix}:{{all}}:sev");
    let number = |cmd: String| -> i64 {
        server()
            .command(&cmd)
            .unwrap()
            .trim_start_matches(':')
            .parse()
            .unwrap()
    };
    let announcement = |severity: Severity| -> Draft {
        let mut d = draft("notice");
        d.category = Category::ANNOUNCEMENT;
        d.severity = severity;
        d
    };
    let severe_of = || {
        let store = store.clone();
        async move {
            store
                .announcements(OffsetDateTime::now_utc())
                .await
                .unwrap()
                .severe
        }
    };
    store
        .append(&StreamKey::All, announcement(Severity::Normal))
        .await
        .unwrap();
    assert_eq!(number(format!("EXISTS {index}")), 0, "a normal one");
    store
        .append(&StreamKey::All, announcement(Severity::High))
        .await
        .unwrap();
    assert_eq!(number(format!("ZCARD {index}")), 1);
    let ttl = pttl(&index);
    assert!(160_000 < ttl && ttl <= 170_000, "PTTL {ttl}");
    assert_eq!(severe_of().await, [(2, Severity::High)]);
    // Seqs 3 to 5 (normal): seq 2 leaves the log (3 kept); its member
    // stays until the next severe append, unread by anyone.
    for _ in 0..3 {
        store
            .append(&StreamKey::All, announcement(Severity::Normal))
            .await
            .unwrap();
    }
    assert_eq!(number(format!("ZCARD {index}")), 1);
    assert_eq!(severe_of().await, []);
    store
        .append(&StreamKey::All, announcement(Severity::Critical))
        .await
        .unwrap();
    assert_eq!(number(format!("ZCARD {index}")), 1, "seq 2 removed");
    assert_eq!(severe_of().await, [(6, Severity::Critical)]);
}

/// A stream's keys live max age plus a slack (a 16th of max age, at most an
/// hour) after an append, and their PEXPIREs are renewed only once the
/// slack has run down: an append to a stream whose log still has more than
/// max age left leaves the TTLs alone, except a new expiry index's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_keys_are_kept_past_max_age_and_renewed_only_when_run_down() {
    use std::time::Duration;

    use herald_core::testkit::{draft, user};
    use herald_core::{Draft, Retention, StreamKey};
    use herald_protocol::Category;
    use time::OffsetDateTime;

    let (store, prefix) = store_with(Retention {
        max_age: Duration::from_secs(160),
        ..Retention::default()
    })
    .await;
    let alice = user();
    let inbox = StreamKey::inbox(&alice);
    let key = |name: &str| format!("{prefix}:{{u:{alice}}}:{name}");
    let (max, keep) = (160_000, 170_000);

    store.append(&inbox, draft("first")).await.unwrap();
    for name in ["inbox", "ids", "unread"] {
        let ttl = pttl(&key(name));
        assert!(max < ttl && ttl <= keep, "{name}: PTTL {ttl}");
    }

    // More than max age left: not renewed.
    server().command(&format!("PEXPIRE {} 165000", key("inbox")));
    store.append(&inbox, draft("second")).await.unwrap();
    assert!(pttl(&key("inbox")) <= 165_000, "renewed too early");
    // ... but an expiry index that the append created gets one.
    let mut expiring = Draft::new(Category::REMIND, "expires");
    expiring.expires_at = Some(OffsetDateTime::now_utc() + Duration::from_secs(60));
    store.append(&inbox, expiring).await.unwrap();
    assert!(pttl(&key("exp")) > max, "a new expiry index has a PEXPIRE");
    assert!(pttl(&key("inbox")) <= 165_000);

    // Run down below max age: every key is renewed.
    server().command(&format!("PEXPIRE {} 150000", key("inbox")));
    server().command(&format!("PEXPIRE {} 150000", key("ids")));
    store.append(&inbox, draft("third")).await.unwrap();
    for name in ["inbox", "ids", "exp", "unread"] {
        let ttl = pttl(&key(name));
        assert!(max < ttl && ttl <= keep, "{name}: PTTL {ttl} after renewal");
    }
}

/// A receiver's conversation list is renewed with its log, or when a new
/// peer joins it (a new list), not on every private message; the sender's
/// list, with no log of the sender's at hand, on every message. Both live
/// max age plus the slack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_lists_are_renewed_with_the_log_or_a_new_peer() {
    use std::time::Duration;

    use herald_core::testkit::user;
    use herald_core::{Draft, Retention, StreamKey};
    use herald_protocol::Category;

    let (store, prefix) = store_with(Retention {
        max_age: Duration::from_secs(160),
        ..Retention::default()
    })
    .await;
    let set_pttl = |key: &str, ms: u32| server().command(&format!("PEXPIRE {key} {ms}"));
    let (alice, bob, carol) = (user(), user(), user());
    let inbox = StreamKey::inbox(&alice);
    let key = |who: &str, name: &str| format!("{prefix}:{{u:{who}}}:{name}");
    let private = |from: &str| {
        let mut draft = Draft::new(Category::MAILBOX, "hi");
        draft.from = Some(from.to_owned());
        draft
    };
    let (max, keep) = (160_000, 170_000);
    let kept = |ttl: i64| max < ttl && ttl <= keep;

    store.append(&inbox, private(&bob)).await.unwrap();
    assert!(kept(pttl(&key(&alice, "peers"))), "a new list lives keep");

    // A known peer, the log not run down: the list is left alone.
    set_pttl(&key(&alice, "peers"), 100_000);
    set_pttl(&key(&alice, "inbox"), 165_000);
    store.append(&inbox, private(&bob)).await.unwrap();
    assert!(
        pttl(&key(&alice, "peers")) <= 100_000,
        "renewed for a known peer"
    );

    // A new peer: renewed.
    store.append(&inbox, private(&carol)).await.unwrap();
    assert!(
        kept(pttl(&key(&alice, "peers"))),
        "not renewed for a new peer"
    );

    // The log run down: renewed with it, for a known peer too.
    set_pttl(&key(&alice, "peers"), 100_000);
    set_pttl(&key(&alice, "inbox"), 150_000);
    store.append(&inbox, private(&bob)).await.unwrap();
    assert!(
        kept(pttl(&key(&alice, "peers"))),
        "not renewed with the log"
    );
    assert!(kept(pttl(&key(&alice, "inbox"))));

    // The sender's side, every time.
    let now_us = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000;
    store.touch_peer(&bob, &alice, now_us).await.unwrap();
    set_pttl(&key(&bob, "peers"), 100_000);
    store.touch_peer(&bob, &alice, now_us + 1).await.unwrap();
    assert!(
        kept(pttl(&key(&bob, "peers"))),
        "the sender's list not renewed"
    );
}

/// Counts hashes written before the packed field (`<category>` and
/// `unseen:<category>`) still count: the store adds them in, and appends
/// and retention move the packed field only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_written_before_the_packed_field_still_count() {
    use herald_core::testkit::{draft, user};
    use herald_core::{Retention, StreamKey};
    use time::OffsetDateTime;

    let (store, prefix) = store_with(Retention {
        max_entries: 2,
        ..Retention::default()
    })
    .await;
    let alice = user();
    let inbox = StreamKey::inbox(&alice);
    let counts_key = format!("{prefix}:{{u:{alice}}}:unread");
    let category = draft("x").category.to_string();
    let counted = |counts: &herald_core::KeptCounts| {
        (
            counts.unread.get(&category).copied().unwrap_or(0),
            counts.unseen.get(&category).copied().unwrap_or(0),
        )
    };

    store.append(&inbox, draft("one")).await.unwrap();
    store.append(&inbox, draft("two")).await.unwrap();
    let (before, _) = store
        .user_counts(&alice, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(counted(&before), (2, 2));

    // The same counts as an earlier version kept them.
    server().command(&format!("DEL {counts_key}"));
    server().command(&format!(
        "HSET {counts_key} {category} 2 unseen:{category} 2"
    ));
    let (legacy, _) = store
        .user_counts(&alice, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(counted(&legacy), (2, 2));

    // A third message: retention drops the first (un-counted), the new one
    // counts; both in the packed field, added to the old ones.
    store.append(&inbox, draft("three")).await.unwrap();
    let (after, _) = store
        .user_counts(&alice, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(counted(&after), (2, 2));
    let packed = server()
        .command(&format!("HGET {counts_key} c:{category}"))
        .unwrap();
    assert_eq!(
        packed.trim_start_matches(':').trim_start_matches('$'),
        "0",
        "{packed}"
    );
}

/// Retention reads the head of each entry it drops (`entry_head`, Lua) to
/// un-count it; seqs past 127 and 255 are msgpack uint8 and uint16 there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_uncounts_entries_whose_seq_takes_two_bytes() {
    use herald_core::testkit::{draft, user};
    use herald_core::{Retention, StreamKey};
    use time::OffsetDateTime;

    let (store, _) = store_with(Retention {
        max_entries: 1,
        ..Retention::default()
    })
    .await;
    let alice = user();
    let inbox = StreamKey::inbox(&alice);
    for i in 0..300 {
        store.append(&inbox, draft(&format!("m{i}"))).await.unwrap();
    }
    let (counts, _) = store
        .user_counts(&alice, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(counts.last_seq, 300);
    let category = draft("x").category.to_string();
    assert_eq!(counts.unread.get(&category), Some(&1), "{counts:?}");
    assert_eq!(counts.unseen.get(&category), Some(&1), "{counts:?}");
}
