//! Suite cases for the unread fallback webhooks ([`WebhookQueue`] under
//! the [`Sender`] that arms events and the [`Webhooks`] rounds that check,
//! send and retry them). The rounds run on the case's clock
//! ([`Webhooks::run_round`]); the HTTP side is a poster that records each
//! request and answers the status the case sets (the gateway's tests POST
//! for real).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use herald_protocol::{MarkState, PreferencesPatch};

use super::{user, Backend};
use crate::backend::{WebhookEvent, WebhookQueue, WebhookState};
use crate::fanout::{FanOut, FanOutSettings};
use crate::{
    unix_ms, Categories, CategorySpec, Inbox, MessageLimits, NewMessage, PostOutcome, Retention,
    RetryDead, Selector, Sender, Signer, Store, UserPreferences, WebhookPoster, WebhookRequest,
    WebhookSettings, Webhooks,
};

/// Records requests; answers the queued outcomes, then 200.
#[derive(Default)]
pub struct RecordingPoster {
    pub requests: Mutex<Vec<WebhookRequest>>,
    answers: Mutex<VecDeque<PostOutcome>>,
}

impl RecordingPoster {
    pub fn answer(&self, outcomes: impl IntoIterator<Item = PostOutcome>) {
        self.answers.lock().unwrap().extend(outcomes);
    }

    pub fn taken(&self) -> Vec<WebhookRequest> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

#[async_trait]
impl WebhookPoster for RecordingPoster {
    async fn post(&self, request: &WebhookRequest) -> PostOutcome {
        self.requests.lock().unwrap().push(request.clone());
        self.answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(PostOutcome::Status(200))
    }
}

/// The suite's secret (32 bytes of 7).
pub fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    )
}

/// `remind` falls back after 60 s; `system` has no fallback.
fn categories() -> Categories {
    let mut remind = CategorySpec::new(herald_protocol::Category::REMIND);
    remind.fallback_after = Some(Duration::from_secs(60));
    Categories::new(vec![remind])
}

/// A node's parts: its sender arming events, its inbox, its webhooks.
struct Node {
    sender: Sender,
    inbox: Inbox,
    preferences: UserPreferences,
    webhooks: Webhooks,
    poster: Arc<RecordingPoster>,
    queue: Arc<dyn WebhookQueue>,
}

async fn node(b: &dyn Backend, store: Arc<dyn Store>, tune: fn(&mut WebhookSettings)) -> Node {
    let queue = b.webhooks().await;
    let sender = Sender::new(
        store.clone(),
        b.idempotency().await,
        b.blocklist().await,
        b.timers().await,
        MessageLimits::default(),
        categories(),
        Duration::from_secs(60),
    )
    .with_fallback(queue.clone());
    let preferences = UserPreferences::new(b.preferences().await, categories());
    let poster = Arc::new(RecordingPoster::default());
    let mut settings = WebhookSettings::new(
        "http://receiver/hook".into(),
        Signer::new(&[secret()]).unwrap(),
    );
    settings.lease = Duration::from_secs(5);
    settings.retry_base = Duration::from_secs(2);
    tune(&mut settings);
    Node {
        inbox: Inbox::new(store.clone(), categories()),
        webhooks: Webhooks::new(
            queue.clone(),
            store,
            preferences.clone(),
            poster.clone(),
            settings,
        ),
        preferences,
        sender,
        poster,
        queue,
    }
}

fn note(category: &str, fallback_after_secs: Option<u64>) -> NewMessage {
    NewMessage {
        category: category.into(),
        body: "your invoice is ready".into(),
        fallback_after_secs,
        ..NewMessage::default()
    }
}

impl Node {
    /// Sends `message` to `users`; its id.
    async fn send(&self, users: &[&String], message: NewMessage) -> uuid::Uuid {
        let users = users.iter().map(|u| (*u).clone()).collect();
        let out = self.sender.prepare(Some(users), message, None).unwrap();
        self.sender.send("suite", vec![out]).await.unwrap()[0].id
    }

    async fn patch(&self, user: &str, json: serde_json::Value) {
        let patch: PreferencesPatch = serde_json::from_value(json).unwrap();
        self.preferences.update(user, &patch).await.unwrap();
    }
}

/// A message with a fallback arms one event per receiver, due after the
/// category's delay (or the send's own): nothing before; then one POST
/// for the receiver who left it unread, signed as Standard Webhooks says,
/// with the message as the receiver sees it; none for the one who read it;
/// none ever again. A category without a fallback arms nothing.
pub async fn webhooks_fire_once_for_an_unread_message(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let n = node(b, store, |_| {}).await;
    let (alice, bob) = (user(), user());
    let sent_at = unix_ms();
    let id = n.send(&[&alice, &bob], note("remind", None)).await;
    n.send(&[&alice], note("system", None)).await;
    n.inbox
        .mark(&bob, MarkState::Read, &Selector::Ids(vec![id]))
        .await
        .unwrap();
    assert_eq!(
        n.webhooks.run_round(sent_at + 30_000, 100).await.unwrap(),
        0
    );
    let backlog = n.webhooks.backlog().await.unwrap();
    assert!(backlog.armed >= 2, "{backlog:?}");

    let due = sent_at + 61_000;
    assert_eq!(n.webhooks.run_round(due, 100).await.unwrap(), 2);
    let requests = n.poster.taken();
    assert_eq!(requests.len(), 1, "alice only: {requests:?}");
    let r = &requests[0];
    assert_eq!(r.id, crate::backend::event_id(id, &alice).to_string());
    assert_eq!(r.timestamp, due / 1000);
    assert_eq!(r.url, "http://receiver/hook");
    let signer = Signer::new(&[secret()]).unwrap();
    assert_eq!(r.signature, signer.sign(&r.id, r.timestamp, &r.body));
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["type"], "message.unread");
    assert_eq!(body["data"]["user"], alice.as_str());
    assert_eq!(body["data"]["message"]["id"], id.to_string());
    assert_eq!(body["data"]["message"]["body"], "your invoice is ready");
    assert_eq!(body["data"]["message"]["seq"], 1);
    let unread_for = body["data"]["unread_for_secs"].as_i64().unwrap();
    assert!((60..=62).contains(&unread_for), "{unread_for}");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));

    let event = n
        .queue
        .get(crate::backend::event_id(id, &alice))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((event.state, event.attempts), (WebhookState::Delivered, 1));
    let bobs = n
        .queue
        .get(crate::backend::event_id(id, &bob))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bobs.state, WebhookState::Dropped);
    assert_eq!(n.webhooks.run_round(due + 3_600_000, 100).await.unwrap(), 0);
    assert!(n.poster.taken().is_empty());

    // The send's own delay overrides the category's; 0 is refused.
    let carol = user();
    let quick = n.send(&[&carol], note("system", Some(5))).await;
    assert_eq!(
        n.webhooks.run_round(unix_ms() + 6_000, 100).await.unwrap(),
        1
    );
    let requests = n.poster.taken();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].body.contains(&quick.to_string()));
    let zero = n
        .sender
        .prepare(Some(vec![carol]), note("remind", Some(0)), None);
    let err = zero.unwrap_err().to_string();
    assert!(err.contains("fallback_after_secs"), "{err}");
}

/// Archived, deleted or snoozed before the due time: no webhook either;
/// nor for a receiver whose `fallback` is off for the category. Quiet
/// hours hold a webhook back to their end, unless the message is critical.
pub async fn webhooks_follow_state_preferences_and_quiet_hours(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let n = node(b, store, |_| {}).await;
    let (archived, deleted, snoozed, muted, quiet) = (user(), user(), user(), user(), user());
    let sent_at = unix_ms();
    let id = n
        .send(
            &[&archived, &deleted, &snoozed, &muted, &quiet],
            note("remind", None),
        )
        .await;
    let ids = Selector::Ids(vec![id]);
    n.inbox
        .mark(&archived, MarkState::Archived, &ids)
        .await
        .unwrap();
    n.inbox
        .mark(&deleted, MarkState::Deleted, &ids)
        .await
        .unwrap();
    n.inbox
        .mark_until(
            &snoozed,
            MarkState::Snoozed,
            &ids,
            Some(sent_at + 3_600_000),
        )
        .await
        .unwrap();
    n.patch(
        &muted,
        serde_json::json!({"categories": {"remind": {"fallback": false}}}),
    )
    .await;
    // Quiet all day but the minute before midnight UTC: the due time falls
    // inside unless the case runs in that minute (then it is sent at once).
    n.patch(
        &quiet,
        serde_json::json!({"quiet_hours": {"tz": "UTC", "start": "00:00", "end": "23:59"}}),
    )
    .await;
    let due = sent_at + 61_000;
    assert_eq!(n.webhooks.run_round(due, 100).await.unwrap(), 5);
    let requests = n.poster.taken();
    let quiet_event = crate::backend::event_id(id, &quiet);
    let held = n.queue.get(quiet_event).await.unwrap().unwrap();
    if held.state == WebhookState::Armed {
        assert!(requests.is_empty(), "{requests:?}");
        let end = held.next_at.unwrap();
        assert!(end > due && end <= due + 86_400_000, "{end} after {due}");
        assert_eq!(n.webhooks.run_round(end - 1, 100).await.unwrap(), 0);
        // At the window's end (23:59 UTC) it goes out.
        assert_eq!(n.webhooks.run_round(end, 100).await.unwrap(), 1);
        assert_eq!(n.poster.taken().len(), 1);
    } else {
        assert_eq!(requests.len(), 1, "sent in the free minute");
    }
    for who in [&archived, &deleted, &snoozed, &muted] {
        let e = n
            .queue
            .get(crate::backend::event_id(id, who))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.state, WebhookState::Dropped, "{who}");
    }

    // A critical message ignores the quiet hours.
    let critical = NewMessage {
        critical: true,
        ..note("remind", None)
    };
    let sent_at = unix_ms();
    n.send(&[&quiet], critical).await;
    assert_eq!(
        n.webhooks.run_round(sent_at + 61_000, 100).await.unwrap(),
        1
    );
    assert_eq!(n.poster.taken().len(), 1);
}

/// A failed try is retried with the same `webhook-id` and body, on the
/// backoff schedule (the first retry within 10 s... here the suite's 2 s
/// base: within 2 s); once retries would pass `give_up_after` the event
/// is dead, listed with its last error, and a retry of a dead event sends
/// it again at once.
pub async fn webhooks_retry_then_die_and_are_revived(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let n = node(b, store, |s| s.give_up_after = Duration::from_secs(20)).await;
    let (alice, bob) = (user(), user());
    let sent_at = unix_ms();
    let id = n.send(&[&alice], note("remind", None)).await;
    n.poster.answer([
        PostOutcome::Status(500),
        PostOutcome::Timeout,
        PostOutcome::Status(204),
    ]);
    let mut now = sent_at + 61_000;
    assert_eq!(n.webhooks.run_round(now, 100).await.unwrap(), 1);
    let event_id = crate::backend::event_id(id, &alice);
    let e = n.queue.get(event_id).await.unwrap().unwrap();
    assert_eq!(
        (e.state, e.attempts, e.last_error.as_deref()),
        (WebhookState::Pending, 1, Some("HTTP 500"))
    );
    let next = e.next_at.unwrap();
    assert!(
        next > now && next <= now + 2_500,
        "first retry within 2 s: {next} vs {now}"
    );
    assert_eq!(n.webhooks.run_round(next - 1, 100).await.unwrap(), 0);
    now = next;
    assert_eq!(n.webhooks.run_round(now, 100).await.unwrap(), 1);
    let e = n.queue.get(event_id).await.unwrap().unwrap();
    assert_eq!((e.attempts, e.last_error.as_deref()), (2, Some("timeout")));
    assert_eq!(
        n.webhooks.run_round(e.next_at.unwrap(), 100).await.unwrap(),
        1
    );
    let tries = n.poster.taken();
    assert_eq!(tries.len(), 3);
    assert!(tries
        .iter()
        .all(|t| t.id == tries[0].id && t.body == tries[0].body));
    let e = n.queue.get(event_id).await.unwrap().unwrap();
    assert_eq!((e.state, e.attempts), (WebhookState::Delivered, 3));

    // bob's receiver fails for good: dead once retries would pass 20 s.
    let sent_at = unix_ms();
    let dead_id = crate::backend::event_id(n.send(&[&bob], note("remind", None)).await, &bob);
    let mut now = sent_at + 61_000;
    for _ in 0..20 {
        n.poster.answer([PostOutcome::Status(503)]);
        if n.webhooks.run_round(now, 100).await.unwrap() == 0 {
            break;
        }
        match n.queue.get(dead_id).await.unwrap().unwrap().next_at {
            Some(next) => now = next,
            None => break,
        }
    }
    let dead = n.queue.get(dead_id).await.unwrap().unwrap();
    assert_eq!(dead.state, WebhookState::Dead, "{dead:?}");
    assert!(dead.attempts >= 3, "{dead:?}");
    assert_eq!(dead.last_error.as_deref(), Some("HTTP 503"));
    let listed = n.webhooks.dead(None, 1000).await.unwrap();
    assert!(listed.iter().any(|e| e.id == dead_id));
    assert!(n.webhooks.backlog().await.unwrap().dead >= 1);
    let after: Vec<_> = n.webhooks.dead(Some(dead_id), 1000).await.unwrap();
    assert!(after.iter().all(|e| e.id > dead_id));

    n.poster.taken();
    let RetryDead::Retrying(revived) = n.webhooks.retry_dead(dead_id).await.unwrap() else {
        panic!("not revived");
    };
    assert_eq!(revived.state, WebhookState::Pending);
    assert_eq!(
        n.webhooks.retry_dead(dead_id).await.unwrap(),
        RetryDead::NotDead(WebhookState::Pending)
    );
    assert_eq!(
        n.webhooks.retry_dead(uuid::Uuid::new_v4()).await.unwrap(),
        RetryDead::Unknown
    );
    assert_eq!(n.webhooks.run_round(unix_ms(), 100).await.unwrap(), 1);
    let again = n.poster.taken();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, dead_id.to_string());
    let e = n.queue.get(dead_id).await.unwrap().unwrap();
    assert_eq!(e.state, WebhookState::Delivered);
    assert!(!n
        .webhooks
        .dead(None, 1000)
        .await
        .unwrap()
        .iter()
        .any(|e| e.id == dead_id));
}

/// Two nodes: a claim holds an event back from the other node until its
/// lease ends (a node that died holding it), then the other node takes
/// it. Of two claims of one armed event, one creates it; arming an event
/// held already changes nothing.
pub async fn webhooks_are_created_once_across_nodes(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let one = node(b, store.clone(), |_| {}).await;
    let two = node(b, store, |_| {}).await;
    let alice = user();
    let sent_at = unix_ms();
    let id = one.send(&[&alice], note("remind", None)).await;
    let event_id = crate::backend::event_id(id, &alice);
    let due = sent_at + 61_000;
    // Node one claims it and dies.
    let claimed = one
        .queue
        .claim(due, 100, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(claimed.iter().any(|e| e.id == event_id));
    assert_eq!(two.webhooks.run_round(due + 4_000, 100).await.unwrap(), 0);
    assert_eq!(two.webhooks.run_round(due + 5_001, 100).await.unwrap(), 1);
    assert_eq!(two.poster.taken().len(), 1);
    assert!(one.poster.taken().is_empty());

    // Arming again (the message appended again) changes nothing.
    let again = WebhookEvent::armed(&alice, id, unix_ms(), Duration::from_secs(1));
    two.queue.arm(&[again]).await.unwrap();
    let e = two.queue.get(event_id).await.unwrap().unwrap();
    assert_eq!(e.state, WebhookState::Delivered);

    // Two claims of one armed event (the first's lease ran out): the
    // first to settle creates it; the other's settle changes nothing.
    let bob = user();
    let sent_at = unix_ms();
    let id = one.send(&[&bob], note("remind", None)).await;
    let event_id = crate::backend::event_id(id, &bob);
    let due = sent_at + 61_000;
    let first = one
        .queue
        .claim(due, 100, Duration::from_secs(1))
        .await
        .unwrap();
    let second = two
        .queue
        .claim(due + 2_000, 100, Duration::from_secs(1))
        .await
        .unwrap();
    let mut a = first.into_iter().find(|e| e.id == event_id).unwrap();
    let mut b2 = second.into_iter().find(|e| e.id == event_id).unwrap();
    assert_eq!(
        (a.state, b2.state),
        (WebhookState::Armed, WebhookState::Armed)
    );
    a.state = WebhookState::Pending;
    a.body = Some("{\"one\":1}".into());
    b2.state = WebhookState::Pending;
    b2.body = Some("{\"two\":2}".into());
    assert!(two.queue.settle(WebhookState::Armed, &b2).await.unwrap());
    assert!(!one.queue.settle(WebhookState::Armed, &a).await.unwrap());
    let e = one.queue.get(event_id).await.unwrap().unwrap();
    assert_eq!(e.body.as_deref(), Some("{\"two\":2}"));
}

mod many;
pub use many::*;
