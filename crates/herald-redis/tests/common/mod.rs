//! The suite's [`Backend`] on a Redis that a test binary shares between its
//! cases. Each case gets its own key prefix, so cases never see each
//! other's streams, presence or `all` stream.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::testkit::Backend;
use herald_core::{Broker, BrokerSink, Idempotency, Presence, Retention, Store, Topics};
use herald_redis::{RedisBackend, RedisSettings};

pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a fan-out job's worker may record no progress before another
/// node takes the job over.
pub const CLAIM_AFTER: Duration = Duration::from_millis(500);

pub struct TestBackend {
    pub settings: RedisSettings,
}

#[allow(dead_code)] // not every test binary uses every helper
impl TestBackend {
    pub fn new(url: String) -> Self {
        TestBackend {
            settings: RedisSettings {
                key_prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
                ..RedisSettings::new(url)
            },
        }
    }

    pub async fn connect(&self, node: &str, retention: Retention) -> RedisBackend {
        RedisBackend::connect(self.settings.clone(), node, retention, HEARTBEAT)
            .await
            .expect("connect to redis")
    }
}

#[async_trait]
impl Backend for TestBackend {
    async fn store(&self, retention: Retention) -> Arc<dyn Store> {
        self.connect("store", retention).await.store()
    }
    async fn broker(&self, node: &str, sink: Arc<dyn BrokerSink>) -> Arc<dyn Broker> {
        self.connect(node, Retention::default())
            .await
            .broker(sink)
            .await
            .expect("broker")
    }
    async fn presence(&self, node: &str) -> Arc<dyn Presence> {
        self.connect(node, Retention::default()).await.presence()
    }
    /// A new backend, so a new connection pool, on every call.
    async fn idempotency(&self) -> Arc<dyn Idempotency> {
        self.connect("idempotency", Retention::default())
            .await
            .idempotency()
    }
    /// A new backend, so a new connection pool, on every call.
    async fn topics(&self) -> Arc<dyn Topics> {
        self.connect("topics", Retention::default()).await.topics()
    }
    /// A new backend (a separate node) on every call.
    async fn preferences(&self) -> Arc<dyn herald_core::PreferenceStore> {
        self.connect("preferences", Retention::default())
            .await
            .preferences()
    }
    /// A new backend (a separate node) on every call.
    async fn blocklist(&self) -> Arc<dyn herald_core::Blocklist> {
        self.connect("blocklist", Retention::default())
            .await
            .blocklist()
    }
    /// A new backend (a separate node) on every call.
    async fn jobs(&self) -> Arc<dyn herald_core::JobQueue> {
        self.connect("jobs", Retention::default())
            .await
            .jobs(CLAIM_AFTER)
    }
    /// A new backend (a separate node) on every call.
    async fn timers(&self) -> Arc<dyn herald_core::Timers> {
        self.connect("timers", Retention::default()).await.timers()
    }
    /// A new backend (a separate node) on every call.
    async fn webhooks(&self) -> Arc<dyn herald_core::WebhookQueue> {
        self.connect("webhooks", Retention::default())
            .await
            .webhooks()
    }
}

/// Many concurrent appends through one backend (so they are batched into
/// shared script calls) to several users and the `all` stream: each stream
/// gets gap-free seqs, every message is published exactly once and in seq
/// order, and the log holds them in order. Then callers that give up early
/// do not break later appends.
#[allow(dead_code)] // used by standalone.rs and cluster.rs only
pub async fn concurrent_appends_are_gap_free_and_published_in_order(b: &TestBackend) {
    use std::collections::HashMap;

    use herald_core::testkit::{draft, user, RecordingSink};
    use herald_core::StreamKey;

    const USERS: usize = 12;
    const PER_STREAM: u64 = 60;

    let backend = b.connect("node-a", Retention::default()).await;
    let store = backend.store();
    let (sink, mut got) = RecordingSink::new();
    let broker = backend.broker(sink).await.expect("broker");
    let users: Vec<String> = (0..USERS).map(|_| user()).collect();
    broker.subscribe(&users).await.unwrap();
    let mut streams: Vec<StreamKey> = users.iter().map(StreamKey::inbox).collect();
    streams.push(StreamKey::All);

    // Interleaved, all at once: far more appends than pool connections.
    let mut tasks = Vec::new();
    for i in 0..PER_STREAM {
        for key in &streams {
            let (store, key) = (store.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let m = store.append(&key, draft(&format!("m{i}"))).await.unwrap();
                (key, m)
            }));
        }
    }
    let mut appended: HashMap<StreamKey, Vec<herald_protocol::Message>> = HashMap::new();
    for task in tasks {
        let (key, m) = task.await.unwrap();
        appended.entry(key).or_default().push(m);
    }
    for key in &streams {
        let mut seqs: Vec<u64> = appended[key].iter().map(|m| m.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=PER_STREAM).collect::<Vec<_>>(), "{key:?}");
        assert_eq!(store.last_seq(key).await.unwrap(), PER_STREAM);
        let log = store.read_after(key, 0, 1000).await.unwrap();
        let mut expected = appended[key].clone();
        expected.sort_by_key(|m| m.seq);
        assert_eq!(log, expected, "{key:?}: log");
    }

    let total = streams.len() * PER_STREAM as usize;
    let mut published: HashMap<StreamKey, Vec<herald_protocol::Message>> = HashMap::new();
    for _ in 0..total {
        let d = got.next().await;
        published
            .entry(d.key.clone())
            .or_default()
            .push(d.message.clone());
    }
    got.none_within(Duration::from_millis(300)).await;
    for key in &streams {
        let mut expected = appended[key].clone();
        expected.sort_by_key(|m| m.seq);
        assert_eq!(published[key], expected, "{key:?}: published");
    }

    // Callers dropped while queued or in flight: later appends still work,
    // and the stream stays gap-free whichever of them were stored.
    let alice = StreamKey::inbox(&users[0]);
    let dropped: Vec<_> = (0..200)
        .map(|i| {
            let (store, key) = (store.clone(), alice.clone());
            tokio::spawn(async move { store.append(&key, draft(&format!("d{i}"))).await })
        })
        .collect();
    tokio::task::yield_now().await;
    for task in &dropped {
        task.abort();
    }
    for i in 0..10 {
        store
            .append(&alice, draft(&format!("after{i}")))
            .await
            .unwrap();
    }
    let last = store.last_seq(&alice).await.unwrap();
    let log = store.read_after(&alice, 0, 10_000).await.unwrap();
    let seqs: Vec<u64> = log.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    let after: Vec<&str> = log
        .iter()
        .map(|m| m.body.as_str())
        .filter(|b| b.starts_with("after"))
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("after{i}")).collect();
    assert_eq!(after, expected);
    backend.shutdown().await;
}

/// Settings for tests that kill Redis: short timeouts and reconnect delays.
#[allow(dead_code)]
pub fn fast_failing(url: String) -> RedisSettings {
    RedisSettings {
        key_prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
        command_timeout: Duration::from_millis(500),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
        ..RedisSettings::new(url)
    }
}

/// Records deliveries and counts resyncs.
pub struct ResyncSink {
    tx: tokio::sync::mpsc::UnboundedSender<Arc<herald_core::Delivery>>,
    resyncs: std::sync::atomic::AtomicUsize,
    resynced: tokio::sync::Notify,
}

impl BrokerSink for ResyncSink {
    fn deliver(&self, delivery: Arc<herald_core::Delivery>) {
        let _ = self.tx.send(delivery);
    }
    fn resync(&self) {
        self.resyncs
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.resynced.notify_waiters();
    }
    fn receipt(&self, _user: &str, _receipt: &herald_protocol::Receipt) {}
    fn counts_changed(&self, _user: &str) {}
}

/// Subscribes a broker of `backend` to a fresh user, checks a delivery,
/// runs `restart` (which kills and restarts the Redis primary), then checks
/// that the broker resubscribed, called `resync`, and delivers new appends.
/// The restarted Redis may have lost everything; only delivery matters.
#[allow(dead_code)]
pub async fn assert_broker_survives_restart(backend: &RedisBackend, restart: impl FnOnce()) {
    use herald_core::testkit::{draft, user};
    use herald_core::StreamKey;
    use std::sync::atomic::Ordering;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = Arc::new(ResyncSink {
        tx,
        resyncs: Default::default(),
        resynced: Default::default(),
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

    let resynced = sink.resynced.notified();
    restart();
    // The resubscription happens before resync is called.
    tokio::time::timeout(Duration::from_secs(20), async {
        if sink.resyncs.load(Ordering::SeqCst) == 0 {
            resynced.await;
        }
    })
    .await
    .expect("resync after the subscriber reconnected");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let m = loop {
        match store.append(&key, draft("after")).await {
            Ok(m) => break m,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "append after restart: {e:?}"
            ),
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
}

/// A job whose worker died half-way (it recorded 10 of 30, then appended
/// 3 more and stopped) is not handed out while its worker could still be
/// alive, then is taken over from where it got to; the dead worker's late
/// progress is refused; every receiver has its message exactly once.
#[allow(dead_code)] // used by standalone.rs and cluster.rs only
pub async fn fanout_job_is_taken_over_after_its_worker_dies(b: &TestBackend) {
    use herald_core::backend::{message_id, Job, JobMessage, JobState};
    use herald_core::testkit::{draft, fan_out, topic, until_done, user};
    use herald_core::StreamKey;

    let topics = b.topics().await;
    let store = b.store(Retention::default()).await;
    let topic = topic();
    let receivers: Vec<String> = (0..30).map(|_| user()).collect();
    for u in &receivers {
        topics.subscribe(u, &topic).await.unwrap();
    }
    let dead = b.jobs().await;
    let job = Job {
        id: uuid::Uuid::now_v7(),
        topic: topic.clone(),
        message: JobMessage::from_draft(draft("news")),
    };
    assert_eq!(dead.enqueue(&job, None).await.unwrap(), 30);
    let lease = dead.take("dead").await.unwrap().expect("a job to take");
    assert_eq!((lease.done, lease.attempts, lease.total), (0, 1, 30));
    let snapshot = dead.receivers(&lease, 0, 13).await.unwrap();
    for u in &snapshot {
        let inbox = StreamKey::inbox(u.as_str());
        store
            .append(&inbox, job.message.draft_for(job.id, u))
            .await
            .unwrap();
    }
    assert!(dead.progress(&lease, "dead", 10).await.unwrap());

    let other = b.jobs().await;
    assert!(
        other.take("other").await.unwrap().is_none(),
        "taken too early"
    );
    tokio::time::sleep(CLAIM_AFTER + Duration::from_millis(100)).await;
    let (fan_out, _worker) = fan_out(b, store.clone(), 7).await;
    let status = until_done(&fan_out, job.id).await;
    assert_eq!((status.total, status.done), (30, 30));
    assert!(!dead.progress(&lease, "dead", 20).await.unwrap());
    dead.finish(&lease, "dead", JobState::Failed).await.unwrap();
    assert_eq!(
        fan_out.status(job.id).await.unwrap().unwrap().state,
        JobState::Done
    );
    for u in &receivers {
        let inbox = store
            .read_after(&StreamKey::inbox(u.as_str()), 0, 10)
            .await
            .unwrap();
        assert_eq!(inbox.len(), 1, "{u}");
        assert_eq!(inbox[0].id, message_id(job.id, u));
    }
}

/// The consumers dead nodes leave in the job stream's group are forgotten
/// once idle, never one holding a job (that would drop its entry) and never
/// the caller; a live worker forgotten while idle takes jobs as before.
#[allow(dead_code)] // used by standalone.rs and cluster.rs only
pub async fn idle_workers_are_forgotten_and_holders_kept(b: &TestBackend) {
    use herald_core::backend::{Job, JobMessage, JobState};
    use herald_core::testkit::{draft, topic, user};

    let topics = b.topics().await;
    let jobs = b.jobs().await;
    let topic = topic();
    topics.subscribe(&user(), &topic).await.unwrap();
    let job = |body: &str| Job {
        id: uuid::Uuid::now_v7(),
        topic: topic.clone(),
        message: JobMessage::from_draft(draft(body)),
    };
    // Two workers that ran a job and hold nothing now ("gone" stands for a
    // node that died idle), then one holding a job.
    for worker in ["gone", "caller"] {
        jobs.enqueue(&job(worker), None).await.unwrap();
        let lease = jobs.take(worker).await.unwrap().expect("a job to take");
        jobs.finish(&lease, worker, JobState::Done).await.unwrap();
    }
    jobs.enqueue(&job("one"), None).await.unwrap();
    let held = jobs.take("holder").await.unwrap().expect("a job to take");
    assert_eq!(
        jobs.forget_idle_workers(Duration::from_secs(3600), &["caller".into()])
            .await
            .unwrap(),
        0,
        "nobody was idle for an hour"
    );
    assert_eq!(
        jobs.forget_idle_workers(Duration::ZERO, &["caller".into()])
            .await
            .unwrap(),
        1,
        "only the idle worker that holds nothing, not the holder or the caller"
    );
    assert!(
        jobs.progress(&held, "holder", 1).await.unwrap(),
        "the holder lost its job"
    );
    jobs.finish(&held, "holder", JobState::Done).await.unwrap();
    assert_eq!(
        jobs.forget_idle_workers(Duration::ZERO, &["caller".into()])
            .await
            .unwrap(),
        1,
        "the holder, idle once its job ended"
    );
    assert_eq!(
        jobs.forget_idle_workers(Duration::ZERO, &["caller".into()])
            .await
            .unwrap(),
        0
    );
    // A forgotten worker is known again at its next take.
    jobs.enqueue(&job("two"), None).await.unwrap();
    let again = jobs.take("gone").await.unwrap().expect("a job to take");
    assert!(jobs.progress(&again, "gone", 1).await.unwrap());
}

/// A node that stops while it holds a fan-out job leaves its consumer in
/// the group; once a live node took the job over (the worker's claim
/// path), that consumer is removed because presence does not know the
/// node. A live node's consumer is never removed, even idle and holding
/// nothing; and a node that presence did not list when the live nodes were
/// read but took a job before the removal (the race, forced by ordering
/// the steps) keeps its consumer and its job. The group's counts follow.
#[allow(dead_code)] // used by standalone.rs and cluster.rs only
pub async fn dead_nodes_consumer_goes_once_its_job_is_taken_over(b: &TestBackend) {
    use herald_core::backend::{Job, JobMessage, JobState, WorkerCounts};
    use herald_core::fanout::{FanOut, FanOutSettings};
    use herald_core::testkit::{draft, topic, until_done, user};
    use herald_core::{Categories, MessageLimits};

    let topics = b.topics().await;
    let store = b.store(Retention::default()).await;
    let topic = topic();
    for _ in 0..5 {
        topics.subscribe(&user(), &topic).await.unwrap();
    }
    let job = || Job {
        id: uuid::Uuid::now_v7(),
        topic: topic.clone(),
        message: JobMessage::from_draft(draft("news")),
    };
    let (dead_node, idle_node, live_node) = (
        format!("dead-{}", user()),
        format!("idle-{}", user()),
        format!("live-{}", user()),
    );
    let counts = |workers, pending| Some(WorkerCounts { workers, pending });

    // A live node that ran a job and holds nothing now.
    let idle = b.connect(&idle_node, Retention::default()).await;
    idle.presence().heartbeat().await.unwrap();
    let idle_jobs = idle.jobs(CLAIM_AFTER);
    idle_jobs.enqueue(&job(), None).await.unwrap();
    let lease = idle_jobs.take(&idle_node).await.unwrap().unwrap();
    idle_jobs
        .finish(&lease, &idle_node, JobState::Done)
        .await
        .unwrap();
    // A node that takes a job and stops: connecting beats once, with a
    // 50 ms heartbeat (alive for 100 ms), and it never beats again.
    let dead = RedisBackend::connect(
        b.settings.clone(),
        &dead_node,
        Retention::default(),
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    let dead_jobs = dead.jobs(CLAIM_AFTER);
    let stuck = job();
    dead_jobs.enqueue(&stuck, None).await.unwrap();
    let held = dead_jobs.take(&dead_node).await.unwrap().unwrap();
    assert_eq!(dead_jobs.workers().await.unwrap(), counts(2, 1));

    // The live node, its worker told which nodes are alive.
    let live = b.connect(&live_node, Retention::default()).await;
    live.presence().heartbeat().await.unwrap();
    let fan_out = Arc::new(
        FanOut::new(
            live.jobs(CLAIM_AFTER),
            store,
            live.idempotency(),
            MessageLimits::default(),
            Categories::default(),
            Duration::from_secs(60),
            FanOutSettings {
                poll: Duration::from_millis(50),
                ..FanOutSettings::default()
            },
        )
        .with_presence(live.presence()),
    );
    assert_eq!(
        fan_out.forget_dead_workers(&live_node).await,
        0,
        "the dead node still holds its job: removing its consumer would drop it"
    );
    // Past the claim timeout (and the dead node's 100 ms of life) the live
    // worker takes the job over and, right after, removes the dead node's
    // consumer.
    tokio::time::sleep(CLAIM_AFTER + Duration::from_millis(100)).await;
    assert!(!live
        .presence()
        .node_connections()
        .await
        .unwrap()
        .contains_key(&dead_node));
    let worker = tokio::spawn(fan_out.clone().run_worker(live_node.clone()));
    until_done(&fan_out, stuck.id).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fan_out.workers().await.unwrap() != counts(2, 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            fan_out.workers().await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.abort();
    assert!(!dead_jobs.progress(&held, &dead_node, 1).await.unwrap());

    // The race: the live nodes are read while "late" is not among them,
    // then late takes a job, then the removal runs on the stale list.
    let alive: Vec<String> = live
        .presence()
        .node_connections()
        .await
        .unwrap()
        .into_keys()
        .collect();
    let late_node = format!("late-{}", user());
    assert!(
        alive.contains(&idle_node) && alive.contains(&live_node) && !alive.contains(&late_node)
    );
    let late_jobs = b
        .connect(&late_node, Retention::default())
        .await
        .jobs(CLAIM_AFTER);
    late_jobs.enqueue(&job(), None).await.unwrap();
    let late = late_jobs.take(&late_node).await.unwrap().unwrap();
    let queue = live.jobs(CLAIM_AFTER);
    assert_eq!(
        queue
            .forget_idle_workers(Duration::ZERO, &alive)
            .await
            .unwrap(),
        0,
        "a consumer holding a job is never removed"
    );
    assert!(late_jobs.progress(&late, &late_node, 1).await.unwrap());
    late_jobs
        .finish(&late, &late_node, JobState::Done)
        .await
        .unwrap();
    assert_eq!(queue.workers().await.unwrap(), counts(3, 0));
    // Holding nothing and not alive: it goes; the live ones stay.
    assert_eq!(
        queue
            .forget_idle_workers(Duration::ZERO, &alive)
            .await
            .unwrap(),
        1
    );
    assert_eq!(fan_out.forget_dead_workers(&live_node).await, 0);
    assert_eq!(queue.workers().await.unwrap(), counts(2, 0));
}
