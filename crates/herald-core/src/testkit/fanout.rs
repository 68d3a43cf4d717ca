//! Suite cases for publishing to topics ([`FanOut`] on a [`JobQueue`]).

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::Category;

use super::topics::topic;
use super::{user, Backend};
use crate::backend::{message_id, JobState, JobStatus};
use crate::fanout::{FanOut, FanOutSettings};
use crate::{Categories, CoreError, MessageLimits, NewMessage, Retention, Store, StreamKey};

/// A publisher on `b` (a node of its own) appending to `store`, with
/// small chunks, its worker running until the returned guard drops.
pub async fn fan_out(
    b: &dyn Backend,
    store: Arc<dyn Store>,
    chunk: usize,
) -> (Arc<FanOut>, WorkerGuard) {
    let fan_out = Arc::new(FanOut::new(
        b.jobs().await,
        store,
        b.idempotency().await,
        MessageLimits::default(),
        Categories::default(),
        Duration::from_secs(60),
        FanOutSettings {
            chunk,
            poll: Duration::from_millis(50),
            ..FanOutSettings::default()
        },
    ));
    let task = tokio::spawn(fan_out.clone().run_worker(format!("w-{}", user())));
    (fan_out, WorkerGuard(task))
}

/// Aborts a worker task when dropped.
pub struct WorkerGuard(tokio::task::JoinHandle<()>);

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn news(body: &str) -> NewMessage {
    NewMessage {
        body: body.into(),
        ..NewMessage::default()
    }
}

/// Polls the job's status until it is `Done` (or panics after 10 s).
pub async fn until_done(fan_out: &FanOut, job: uuid::Uuid) -> JobStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = fan_out.status(job).await.unwrap().expect("job known");
        if status.state == JobState::Done {
            return status;
        }
        assert_ne!(status.state, JobState::Failed, "{status:?}");
        assert!(tokio::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every subscriber at publish time gets one message (its id derived from
/// job and user), the publisher and later subscribers none; the default
/// category follows the topic; the status counts them.
pub async fn fanout_reaches_each_subscriber_once(b: &dyn Backend) {
    let topics = b.topics().await;
    let store = b.store(Retention::default()).await;
    let (fan_out, _worker) = fan_out(b, store.clone(), 7).await;
    let topic = topic();
    let publisher = user();
    let mut subscribers: Vec<String> = (0..25).map(|_| user()).collect();
    subscribers.sort();
    for u in subscribers.iter().chain([&publisher]) {
        topics.subscribe(u, &topic).await.unwrap();
    }
    let published = fan_out
        .publish(
            "api",
            &topic,
            NewMessage {
                from: Some(publisher.clone()),
                ..news("chapter 2 is out")
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(published.subscribers, 25);
    let late = user();
    topics.subscribe(&late, &topic).await.unwrap();
    let status = until_done(&fan_out, published.job).await;
    assert_eq!((status.total, status.done), (25, 25));
    assert_eq!(status.topic, topic);
    for u in &subscribers {
        let inbox = store.read_after(&StreamKey::inbox(u), 0, 10).await.unwrap();
        assert_eq!(inbox.len(), 1, "{u}");
        assert_eq!(inbox[0].id, message_id(published.job, u));
        assert_eq!(inbox[0].category, Category::RESOURCE_SUBSCRIPTION);
        assert_eq!(inbox[0].body, "chapter 2 is out");
    }
    for nobody in [&publisher, &late] {
        let inbox = store.last_seq(&StreamKey::inbox(nobody)).await.unwrap();
        assert_eq!(inbox, 0, "{nobody}");
    }
    // A follow (`user:` topic) defaults to resource_publish; nobody there.
    let empty = fan_out
        .publish("api", &format!("user:{}", user()), news("hi"), None)
        .await
        .unwrap();
    assert_eq!(empty.subscribers, 0);
    let status = fan_out.status(empty.job).await.unwrap().unwrap();
    assert_eq!((status.state, status.total), (JobState::Done, 0));
}

/// A retry with the same key gets the same job and nothing is sent twice;
/// the key with another body is a conflict; bad input is refused.
pub async fn fanout_publish_is_idempotent_and_validated(b: &dyn Backend) {
    let topics = b.topics().await;
    let store = b.store(Retention::default()).await;
    let (fan_out, _worker) = fan_out(b, store.clone(), 100).await;
    let topic = format!("user:{}", user());
    let fan = user();
    topics.subscribe(&fan, &topic).await.unwrap();
    let key = Some(format!("k-{}", user()));
    let first = fan_out
        .publish("api", &topic, news("new post"), key.clone())
        .await
        .unwrap();
    let again = fan_out
        .publish("api", &topic, news("new post"), key.clone())
        .await
        .unwrap();
    assert_eq!(first, again);
    until_done(&fan_out, first.job).await;
    let inbox = store
        .read_after(&StreamKey::inbox(&fan), 0, 10)
        .await
        .unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].category, Category::RESOURCE_PUBLISH);
    match fan_out.publish("api", &topic, news("other"), key).await {
        Err(CoreError::Conflict(_)) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    for (topic, message) in [
        ("a b", news("x")),
        (
            "article:1",
            NewMessage {
                category: "mailbox".into(),
                ..news("x")
            },
        ),
        (
            "article:1",
            NewMessage {
                category: "announcement".into(),
                ..news("x")
            },
        ),
        (
            "article:1",
            NewMessage {
                category: "nope".into(),
                ..news("x")
            },
        ),
    ] {
        match fan_out.publish("api", topic, message.clone(), None).await {
            Err(CoreError::Invalid(_)) => {}
            other => panic!("{topic} {message:?}: expected Invalid, got {other:?}"),
        }
    }
}

/// Appending an id the stream holds already stores and publishes nothing:
/// the same seq comes back (what makes a resumed job exactly-once).
pub async fn store_appends_each_id_once(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let key = StreamKey::inbox(user());
    let first = super::draft("once");
    let seq = store.append(&key, first.clone()).await.unwrap().seq;
    store.append(&key, super::draft("other")).await.unwrap();
    let again = store.append(&key, first).await.unwrap();
    assert_eq!(again.seq, seq);
    assert_eq!(store.last_seq(&key).await.unwrap(), 2);
    let kept = store.read_after(&key, 0, 10).await.unwrap();
    assert_eq!(kept.len(), 2);
    // The duplicate used no seq: the stream stays gap-free.
    let next = store.append(&key, super::draft("third")).await.unwrap();
    assert_eq!(next.seq, 3);
}
