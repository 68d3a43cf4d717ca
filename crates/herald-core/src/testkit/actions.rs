//! Suite cases for action buttons: `Inbox::act` (read state and counts,
//! the `changed` push, first act wins across nodes under concurrency) and
//! its `message.action` webhook.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{Action, Category, Changed, ChangedState, MessageState, Stream};
use tokio::sync::mpsc;

use super::notification_center::assert_counts_match;
use super::webhooks::{secret, RecordingPoster};
use super::{user, Backend};
use crate::backend::{action_event_id, WebhookState};
use crate::{
    unix_ms, BrokerSink, Categories, CoreError, Delivery, Draft, HistoryQuery, Inbox, Retention,
    Signer, StreamKey, UserPreferences, WebhookSettings, Webhooks,
};

fn buttons() -> Vec<Action> {
    ["accept", "decline"]
        .into_iter()
        .map(|id| Action {
            id: id.into(),
            label: id.to_uppercase(),
            url: Some(format!("https://example.com/{id}")),
        })
        .collect()
}

fn invite(body: &str) -> Draft {
    let mut d = Draft::new(Category::REMIND, body);
    d.actions = buttons();
    d
}

/// Records the `changed` events a broker hands over.
struct ChangedSink(mpsc::UnboundedSender<(String, Changed)>);

impl BrokerSink for ChangedSink {
    fn deliver(&self, _delivery: Arc<Delivery>) {}
    fn resync(&self) {}
    fn counts_changed(&self, _user: &str) {}
    fn receipt(&self, _user: &str, _receipt: &herald_protocol::Receipt) {}
    fn changed(&self, user: &str, changed: &Changed) {
        let _ = self.0.send((user.to_owned(), changed.clone()));
    }
}

/// An act marks the message read (the counts follow, as a recount says),
/// records the action (history shows `acted`, state `read`) and pushes one
/// `changed` (`acted`, with the action) on the user's channel. A second
/// act, on another node and with another action, is refused with
/// `AlreadyActed` and changes nothing; an unknown action, a message
/// without buttons and an unknown id are refused with what is wrong. An
/// announcement's buttons are pressed by each user for themselves.
pub async fn actions_act_marks_read_once_and_pushes_changed(b: &dyn Backend) {
    // Two nodes' inboxes over one store (the suite's stores are per
    // backend instance; the gateway's tests run two processes).
    let store = b.store(Retention::default()).await;
    let (one, two) = (
        Inbox::new(store.clone(), Categories::default()),
        Inbox::new(store.clone(), Categories::default()),
    );
    let (alice, bob) = (user(), user());
    let (tx, mut changes) = mpsc::unbounded_channel();
    let broker = b.broker("actions-node", Arc::new(ChangedSink(tx))).await;
    broker
        .subscribe(&[alice.clone(), bob.clone()])
        .await
        .unwrap();
    let key = StreamKey::inbox(&alice);
    let asked = store.append(&key, invite("join the team?")).await.unwrap();
    let plain = store
        .append(&key, Draft::new(Category::REMIND, "no buttons"))
        .await
        .unwrap();
    assert_eq!(asked.actions, buttons(), "stored with its buttons");
    assert_eq!(one.counts(&alice).await.unwrap().counts().unread_total, 2);

    let acted = one.act(&alice, asked.id, "accept").await.unwrap();
    assert_eq!((acted.action.as_str(), acted.read_now), ("accept", true));
    let counts = one.counts(&alice).await.unwrap().counts();
    assert_eq!(counts.unread_total, 1);
    assert_counts_match(&one, &*store, &alice).await;
    let (to, changed) = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a changed event within 5 s")
        .unwrap();
    assert_eq!(to, alice);
    assert_eq!(
        changed,
        Changed {
            ids: vec![asked.id],
            state: ChangedState::Acted,
            by: None,
            action: Some("accept".into()),
        }
    );
    let page = two.history(&alice, HistoryQuery::default()).await.unwrap();
    let entry = page
        .messages
        .iter()
        .find(|e| e.message.id == asked.id)
        .unwrap();
    assert_eq!(entry.message.acted.as_deref(), Some("accept"));
    assert_eq!(entry.state, MessageState::Read);
    assert!(page
        .messages
        .iter()
        .all(|e| e.message.id == asked.id || e.message.acted.is_none()));

    let again = two.act(&alice, asked.id, "decline").await;
    assert!(
        matches!(again, Err(CoreError::AlreadyActed(_))),
        "{again:?}"
    );
    let same = one.act(&alice, asked.id, "accept").await;
    assert!(matches!(same, Err(CoreError::AlreadyActed(_))), "{same:?}");
    let state = store.read_state(&alice).await.unwrap();
    assert_eq!(
        state
            .marks(Stream::Inbox)
            .acted
            .get(&asked.seq)
            .map(String::as_str),
        Some("accept")
    );

    let unknown = one.act(&alice, asked.id, "maybe").await.unwrap_err();
    assert!(
        matches!(&unknown, CoreError::Invalid(m) if m.starts_with("action:") && m.contains("accept, decline")),
        "{unknown:?}"
    );
    let bare = one.act(&alice, plain.id, "accept").await.unwrap_err();
    assert!(
        matches!(&bare, CoreError::Invalid(m) if m.starts_with("message:")),
        "{bare:?}"
    );
    let missing = one.act(&alice, uuid::Uuid::now_v7(), "accept").await;
    assert!(
        matches!(missing, Err(CoreError::NotFound(_))),
        "{missing:?}"
    );
    assert!(one.act("a b", asked.id, "accept").await.is_err());
    // Alice's message is not Bob's.
    let theirs = one.act(&bob, asked.id, "accept").await;
    assert!(matches!(theirs, Err(CoreError::NotFound(_))), "{theirs:?}");

    // A private message with buttons: its conversation page shows the act.
    let mut dm = Draft::new(Category::MAILBOX, "lunch?");
    dm.from = Some(bob.clone());
    dm.actions = buttons();
    let dm = store.append(&key, dm).await.unwrap();
    two.act(&alice, dm.id, "decline").await.unwrap();
    let page = crate::Conversations::new(store.clone())
        .page(&alice, &bob, None, None)
        .await
        .unwrap();
    assert_eq!(page.messages[0].message.id, dm.id);
    assert_eq!(page.messages[0].message.acted.as_deref(), Some("decline"));
    assert_eq!(page.messages[0].state, MessageState::Read);

    // An announcement: each user acts for themselves.
    let mut poll = Draft::new(Category::ANNOUNCEMENT, "new terms");
    poll.actions = buttons();
    let poll = store.append(&StreamKey::All, poll).await.unwrap();
    one.act(&alice, poll.id, "accept").await.unwrap();
    two.act(&bob, poll.id, "decline").await.unwrap();
    let again = one.act(&bob, poll.id, "accept").await;
    assert!(
        matches!(again, Err(CoreError::AlreadyActed(_))),
        "{again:?}"
    );
    for (who, want) in [(&alice, "accept"), (&bob, "decline")] {
        let state = store.read_state(who).await.unwrap();
        assert_eq!(
            state
                .marks(Stream::All)
                .acted
                .get(&poll.seq)
                .map(String::as_str),
            Some(want)
        );
        assert_counts_match(&one, &*store, who).await;
    }
}

/// Two nodes act on the same messages at once, each with its own action:
/// for every message exactly one act succeeds, the other gets
/// `AlreadyActed`, and the action recorded is the winner's. The counts
/// equal a recount afterwards.
pub async fn actions_first_act_wins_under_concurrency(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let nodes = [
        Arc::new(Inbox::new(store.clone(), Categories::default())),
        Arc::new(Inbox::new(store.clone(), Categories::default())),
    ];
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let mut sent = Vec::new();
    for i in 0..20 {
        sent.push(store.append(&key, invite(&format!("m{i}"))).await.unwrap());
    }
    let mut tasks = Vec::new();
    for message in &sent {
        for (node, action) in nodes.iter().zip(["accept", "decline"]) {
            let (node, alice, id) = (node.clone(), alice.clone(), message.id);
            tasks.push(tokio::spawn(async move {
                (id, action, node.act(&alice, id, action).await)
            }));
        }
    }
    let mut winners = std::collections::HashMap::new();
    for task in tasks {
        let (id, action, outcome) = task.await.unwrap();
        match outcome {
            Ok(acted) => {
                assert_eq!(acted.action, action);
                assert!(winners.insert(id, action).is_none(), "two acts won on {id}");
            }
            Err(CoreError::AlreadyActed(_)) => {}
            Err(e) => panic!("act on {id}: {e}"),
        }
    }
    assert_eq!(winners.len(), sent.len(), "one act won on each message");
    let state = store.read_state(&alice).await.unwrap();
    for message in &sent {
        assert_eq!(
            state
                .marks(Stream::Inbox)
                .acted
                .get(&message.seq)
                .map(String::as_str),
            Some(winners[&message.id]),
        );
    }
    assert_counts_match(&nodes[0], &*store, &alice).await;
    assert_eq!(
        nodes[1].counts(&alice).await.unwrap().counts().unread_total,
        0
    );
}

/// With webhooks, each act arms its `message.action` event before it
/// commits; when due, only the recorded act's event is sent (signed as
/// every event is, retried the same way), the concurrent loser's is
/// dropped, whichever node's worker claims them.
pub async fn actions_raise_one_message_action_webhook(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let queue = b.webhooks().await;
    let categories = Categories::default();
    let nodes = [
        Arc::new(
            Inbox::new(store.clone(), categories.clone()).with_action_webhooks(b.webhooks().await),
        ),
        Arc::new(Inbox::new(store.clone(), categories.clone()).with_action_webhooks(queue.clone())),
    ];
    let poster = Arc::new(RecordingPoster::default());
    let settings = WebhookSettings::new(
        "http://receiver/hook".into(),
        Signer::new(&[secret()]).unwrap(),
    );
    let webhooks = Webhooks::new(
        queue.clone(),
        store.clone(),
        UserPreferences::new(b.preferences().await, categories),
        poster.clone(),
        settings,
    );
    let alice = user();
    let asked = store
        .append(&StreamKey::inbox(&alice), invite("join?"))
        .await
        .unwrap();
    let acts = nodes
        .iter()
        .zip(["accept", "decline"])
        .map(|(node, action)| {
            let (node, alice) = (node.clone(), alice.clone());
            async move { (action, node.act(&alice, asked.id, action).await) }
        });
    let outcomes = futures_util::future::join_all(acts).await;
    let winner = outcomes
        .iter()
        .filter(|(_, o)| o.is_ok())
        .map(|(a, _)| *a)
        .collect::<Vec<_>>();
    assert_eq!(winner.len(), 1, "{outcomes:?}");
    let (winner, loser) = if winner[0] == "accept" {
        ("accept", "decline")
    } else {
        ("decline", "accept")
    };
    // An unknown action arms nothing.
    assert!(nodes[0].act(&alice, asked.id, "maybe").await.is_err());

    let now = unix_ms();
    assert_eq!(webhooks.run_round(now + 1_000, 100).await.unwrap(), 2);
    let requests = poster.taken();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(r.id, action_event_id(asked.id, &alice, winner).to_string());
    let signer = Signer::new(&[secret()]).unwrap();
    assert_eq!(r.signature, signer.sign(&r.id, r.timestamp, &r.body));
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["type"], "message.action");
    assert_eq!(body["data"]["user"], alice.as_str());
    assert_eq!(body["data"]["action"]["id"], winner);
    assert_eq!(body["data"]["action"]["label"], winner.to_uppercase());
    assert_eq!(body["data"]["message"]["id"], asked.id.to_string());
    assert_eq!(body["data"]["message"]["acted"], winner);
    let lost = queue
        .get(action_event_id(asked.id, &alice, loser))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lost.state, WebhookState::Dropped);
    let sent = queue
        .get(action_event_id(asked.id, &alice, winner))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.state, WebhookState::Delivered);
    assert_eq!(webhooks.run_round(now + 3_600_000, 100).await.unwrap(), 0);
    assert!(poster.taken().is_empty());
}

/// An action event whose act never committed (its node died between the
/// arm and the commit, or the commit failed) is checked again while it
/// may still commit, then dropped after `ACT_WAIT`: no webhook for an act
/// that did not happen. One whose act commits meanwhile is sent.
pub async fn actions_webhook_waits_for_its_act_then_is_dropped(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let queue = b.webhooks().await;
    let categories = Categories::default();
    let poster = Arc::new(RecordingPoster::default());
    let webhooks = Webhooks::new(
        queue.clone(),
        store.clone(),
        UserPreferences::new(b.preferences().await, categories.clone()),
        poster.clone(),
        WebhookSettings::new(
            "http://receiver/hook".into(),
            Signer::new(&[secret()]).unwrap(),
        ),
    );
    let (alice, bob) = (user(), user());
    let never = store
        .append(&StreamKey::inbox(&alice), invite("never acted"))
        .await
        .unwrap();
    let late = store
        .append(&StreamKey::inbox(&bob), invite("acted late"))
        .await
        .unwrap();
    let at = unix_ms();
    queue
        .arm(&[
            crate::backend::WebhookEvent::action(&alice, never.id, "accept", at),
            crate::backend::WebhookEvent::action(&bob, late.id, "accept", at),
        ])
        .await
        .unwrap();
    assert_eq!(webhooks.run_round(at, 100).await.unwrap(), 2);
    assert!(poster.taken().is_empty(), "nothing committed yet");
    let waiting = queue
        .get(action_event_id(never.id, &alice, "accept"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiting.state, WebhookState::Armed);
    assert!(waiting.next_at.unwrap() > at, "checked again later");

    // Bob's act commits (its own arm finds the event there and adds none).
    Inbox::new(store.clone(), categories)
        .with_action_webhooks(queue.clone())
        .act(&bob, late.id, "accept")
        .await
        .unwrap();
    assert_eq!(webhooks.run_round(at + 2_000, 100).await.unwrap(), 2);
    let sent = poster.taken();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].id,
        action_event_id(late.id, &bob, "accept").to_string()
    );

    let after = at + crate::ACT_WAIT.as_millis() as i64 + 2_000;
    assert_eq!(webhooks.run_round(after, 100).await.unwrap(), 1);
    assert!(poster.taken().is_empty());
    let dropped = queue
        .get(action_event_id(never.id, &alice, "accept"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dropped.state, WebhookState::Dropped);
}

/// An act that armed its event and then failed leaves the event dropped
/// after `ACT_WAIT`; the user pressing the same action later (the
/// event's id is the same) arms it again, so the act that commits gets
/// its one webhook, sent when due as any other.
pub async fn actions_webhook_rearms_after_a_failed_act(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let queue = b.webhooks().await;
    let categories = Categories::default();
    let poster = Arc::new(RecordingPoster::default());
    let webhooks = Webhooks::new(
        queue.clone(),
        store.clone(),
        UserPreferences::new(b.preferences().await, categories.clone()),
        poster.clone(),
        WebhookSettings::new(
            "http://receiver/hook".into(),
            Signer::new(&[secret()]).unwrap(),
        ),
    );
    let alice = user();
    let asked = store
        .append(&StreamKey::inbox(&alice), invite("retry me"))
        .await
        .unwrap();
    let id = action_event_id(asked.id, &alice, "accept");
    // The failed act: its event armed, its commit never made.
    let at = unix_ms();
    queue
        .arm(&[crate::backend::WebhookEvent::action(
            &alice, asked.id, "accept", at,
        )])
        .await
        .unwrap();
    let after = at + crate::ACT_WAIT.as_millis() as i64 + 2_000;
    assert_eq!(webhooks.run_round(after, 100).await.unwrap(), 1);
    assert!(poster.taken().is_empty());
    let held = queue.get(id).await.unwrap().unwrap();
    assert_eq!(held.state, WebhookState::Dropped);

    // Pressed again, it commits: the dropped event is armed again.
    Inbox::new(store.clone(), categories)
        .with_action_webhooks(queue.clone())
        .act(&alice, asked.id, "accept")
        .await
        .unwrap();
    let armed = queue.get(id).await.unwrap().unwrap();
    assert_eq!(armed.state, WebhookState::Armed);
    assert!(armed.stored_at >= at, "the new act's time");
    let now = unix_ms();
    assert_eq!(webhooks.run_round(now + 1_000, 100).await.unwrap(), 1);
    let sent = poster.taken();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].id, id.to_string());
    let body: serde_json::Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(body["data"]["message"]["acted"], "accept");
    assert_eq!(
        queue.get(id).await.unwrap().unwrap().state,
        WebhookState::Delivered
    );
    assert_eq!(webhooks.run_round(now + 3_600_000, 100).await.unwrap(), 0);
    assert!(poster.taken().is_empty());
}
