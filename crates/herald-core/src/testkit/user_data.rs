//! Suite cases for a user's data ([`UserData`]): the export lists
//! everything every part holds of the user, the erasure empties each part
//! (the peer keeps their side), tells the user's nodes, and is idempotent;
//! a large inbox is exported page by page; a send racing the erasure is
//! either erased or kept whole.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{Category, Stream};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::{draft, user, Backend};
use crate::backend::{ScheduleState, WebhookEvent};
use crate::{
    unix_ms, BrokerSink, Categories, ConnInfo, Delivery, Draft, Export, MessageLimits, NewMessage,
    Retention, Selector, Sender, Store, StreamKey, UserData, UserDataParts, UserPreferences,
    EXPORT_PAGE,
};

/// A sink that records the users whose data was erased.
struct ErasedSink(mpsc::UnboundedSender<String>);

impl BrokerSink for ErasedSink {
    fn deliver(&self, _delivery: Arc<Delivery>) {}
    fn resync(&self) {}
    fn counts_changed(&self, _user: &str) {}
    fn receipt(&self, _user: &str, _receipt: &herald_protocol::Receipt) {}
    fn erased(&self, user: &str) {
        let _ = self.0.send(user.to_owned());
    }
}

/// A node's [`UserData`] and the sender that schedules, over `store`.
async fn node(b: &dyn Backend, store: Arc<dyn Store>, node: &str) -> (UserData, Sender) {
    let preferences = b.preferences().await;
    let timers = b.timers().await;
    let data = UserData::new(
        UserDataParts {
            store: store.clone(),
            presence: b.presence(node).await,
            topics: b.topics().await,
            blocklist: b.blocklist().await,
            preferences: preferences.clone(),
            timers: timers.clone(),
            webhooks: b.webhooks().await,
        },
        UserPreferences::new(preferences, Categories::default()),
    );
    let sender = Sender::new(
        store,
        b.idempotency().await,
        b.blocklist().await,
        timers,
        MessageLimits::default(),
        Categories::default(),
        Duration::from_secs(60),
    );
    (data, sender)
}

/// The whole document, and how many messages each chunk after the first
/// carried.
async fn read_all(mut export: Export) -> (Value, Vec<u64>) {
    let mut doc = Vec::new();
    let mut pages = Vec::new();
    let mut before = 0;
    let mut first = true;
    while let Some(chunk) = export.next_chunk().await.unwrap() {
        doc.extend_from_slice(&chunk);
        if !first {
            pages.push(export.messages_written() - before);
        }
        before = export.messages_written();
        first = false;
    }
    let doc = serde_json::from_slice(&doc).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&doc[..doc.len().min(500)])
        )
    });
    (doc, pages)
}

fn note(body: &str) -> NewMessage {
    NewMessage {
        category: "system".into(),
        body: body.into(),
        ..NewMessage::default()
    }
}

/// Alice's data in every part: three messages (one read, one acted on), a private
/// message from bob, her side of a conversation with carol, a device
/// cursor, a topic, a block, a preference, two scheduled sends (one to her
/// and bob, one to her alone), a webhook event and a live connection. The
/// export lists each; the erasure says what it erased by kind, tells her
/// node, and leaves an export with nothing; bob keeps his side and his
/// scheduled send; her seqs go on where they were; a second erasure
/// erases nothing.
pub async fn user_data_export_lists_everything_and_erase_empties_it(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (data, sender) = node(b, store.clone(), "n1").await;
    let (alice, bob, carol, mallory) = (user(), user(), user(), user());
    let (tx, mut erased_rx) = mpsc::unbounded_channel();
    let broker = b.broker("n1", Arc::new(ErasedSink(tx))).await;
    broker
        .subscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();

    let inbox = StreamKey::inbox(&alice);
    let first = store.append(&inbox, draft("one")).await.unwrap();
    // A message with action buttons, acted on (the actions' fields).
    let mut two = draft("two");
    two.actions = vec![herald_protocol::Action {
        id: "accept".into(),
        label: "Accept".into(),
        url: None,
    }];
    let two = store.append(&inbox, two).await.unwrap();
    store.append(&inbox, draft("three")).await.unwrap();
    let mut private = Draft::new(Category::MAILBOX, "hi alice");
    private.from = Some(bob.clone());
    let private = store.append(&inbox, private).await.unwrap();
    store.touch_peer(&bob, &alice, 1).await.unwrap();
    store.touch_peer(&alice, &carol, 2).await.unwrap();
    store.ack(&alice, "phone", Stream::Inbox, 2).await.unwrap();
    let inbox_service = crate::Inbox::new(store.clone(), Categories::default());
    inbox_service
        .mark(
            &alice,
            herald_protocol::MarkState::Read,
            &Selector::Ids(vec![first.id]),
        )
        .await
        .unwrap();
    inbox_service.act(&alice, two.id, "accept").await.unwrap();
    let topics = b.topics().await;
    let topic = format!("article:{}", user());
    topics.subscribe(&alice, &topic).await.unwrap();
    let blocklist = b.blocklist().await;
    blocklist.block(&alice, &mallory).await.unwrap();
    let preferences = UserPreferences::new(b.preferences().await, Categories::default());
    let patch: herald_protocol::PreferencesPatch =
        serde_json::from_value(serde_json::json!({"categories":{"remind":{"fallback":false}}}))
            .unwrap();
    preferences.update(&alice, &patch).await.unwrap();
    let at = unix_ms() + 3_600_000;
    let both = sender
        .prepare_at(
            Some(vec![alice.clone(), bob.clone()]),
            note("both"),
            None,
            Some(at),
        )
        .unwrap();
    let alone = sender
        .prepare_at(Some(vec![alice.clone()]), note("alone"), None, Some(at + 1))
        .unwrap();
    let both_id = both.draft.id;
    let alone_id = alone.draft.id;
    sender.send("api", vec![both, alone]).await.unwrap();
    let webhooks = b.webhooks().await;
    let event = WebhookEvent::armed(&alice, first.id, unix_ms(), Duration::from_secs(3600));
    webhooks.arm(std::slice::from_ref(&event)).await.unwrap();
    webhooks.remember(&alice).await.unwrap();
    let presence = b.presence("n1").await;
    let conn = ConnInfo {
        conn_id: uuid::Uuid::new_v4(),
        user_id: alice.clone(),
        node_id: "n1".into(),
        device: "phone".into(),
        connected_at: OffsetDateTime::now_utc(),
    };
    presence.add(&conn).await.unwrap();

    let (doc, _) = read_all(data.export(&alice).await.unwrap()).await;
    assert_eq!(doc["user"], alice.as_str());
    let messages = doc["messages"].as_array().unwrap();
    let bodies: Vec<&str> = messages
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["one", "two", "three", "hi alice"]);
    assert_eq!(messages[0]["state"], "read");
    assert_eq!(messages[1]["state"], "read", "acting reads it");
    assert_eq!(messages[1]["acted"], "accept");
    assert_eq!(messages[1]["actions"][0]["id"], "accept");
    assert_eq!(messages[2]["state"], "unseen");
    assert_eq!(messages[3]["from"], bob.as_str());
    assert_eq!(messages[3]["id"], private.id.to_string());
    assert_eq!(doc["topics"], serde_json::json!([topic]));
    assert_eq!(doc["blocked"], serde_json::json!([mallory]));
    assert_eq!(
        doc["preferences"]["categories"]["remind"]["fallback"],
        false
    );
    let peers: Vec<&str> = doc["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["peer"].as_str().unwrap())
        .collect();
    assert_eq!(peers.len(), 2, "{peers:?}");
    assert!(peers.contains(&bob.as_str()) && peers.contains(&carol.as_str()));
    let scheduled: Vec<String> = doc["scheduled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(scheduled, [both_id.to_string(), alone_id.to_string()]);
    assert!(
        doc["scheduled"][0].get("users").is_none(),
        "other receivers are not listed"
    );
    assert_eq!(doc["webhooks"][0]["id"], event.id.to_string());
    assert_eq!(doc["webhooks"][0]["state"], "armed");

    let erased = data.erase(&alice).await.unwrap();
    assert_eq!(
        erased,
        crate::Erased {
            messages: 4,
            conversations: 2,
            cursors: 1,
            topics: 1,
            blocked: 1,
            preferences: 1,
            scheduled: 2,
            webhooks: 1,
            connections: 1,
        }
    );
    let told = tokio::time::timeout(Duration::from_secs(5), erased_rx.recv())
        .await
        .expect("the user's node is told")
        .unwrap();
    assert_eq!(told, alice);

    let (doc, _) = read_all(data.export(&alice).await.unwrap()).await;
    for empty in [
        "messages",
        "topics",
        "blocked",
        "conversations",
        "scheduled",
        "webhooks",
    ] {
        assert_eq!(doc[empty], serde_json::json!([]), "{empty}: {doc}");
    }
    assert_eq!(doc["delivered"], 0);
    assert_eq!(
        doc["preferences"],
        serde_json::to_value(preferences.get(&user()).await.unwrap()).unwrap(),
        "defaults only"
    );
    let (counts, state) = store
        .user_counts(&alice, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(counts.unread.values().sum::<i64>(), 0);
    assert_eq!(counts.unseen.values().sum::<i64>(), 0);
    assert_eq!(state.marks(Stream::Inbox).read_upto, 0);
    assert!(state.marks(Stream::Inbox).exceptions.is_empty());
    assert_eq!(
        store.acked(&alice, "phone", Stream::Inbox).await.unwrap(),
        0
    );
    assert!(presence.connections(&alice).await.unwrap().is_empty());
    assert!(topics
        .subscribers(&topic, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .private_from(&alice, &bob, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(webhooks.get(event.id).await.unwrap().is_none());
    let mut cursor = None;
    loop {
        let page = webhooks.audience(cursor.as_deref(), 1_000).await.unwrap();
        assert!(
            !page.users.contains(&alice),
            "out of the announcements' audience"
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // Bob keeps his side and his scheduled send; the one to alice alone
    // is cancelled.
    let bobs = store.peers(&bob).await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].0, alice);
    let timers = b.timers().await;
    let left = timers.scheduled_for(&bob).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, both_id);
    assert_eq!(left[0].users.as_deref(), Some(&[bob.clone()][..]));
    assert_eq!(
        timers.status(alone_id).await.unwrap().unwrap().state,
        ScheduleState::Cancelled
    );
    // Her seqs go on: a device that comes back is never handed one it
    // holds.
    assert_eq!(store.append(&inbox, draft("after")).await.unwrap().seq, 5);

    let again = data.erase(&alice).await.unwrap();
    assert_eq!(
        again,
        crate::Erased {
            messages: 1,
            ..crate::Erased::default()
        },
        "only what came after"
    );
    assert_eq!(data.erase(&alice).await.unwrap(), crate::Erased::default());
    assert!(data.erase("a b").await.is_err(), "a bad user id");
}

/// 10,000 messages are exported in order, every one once, in chunks of at
/// most [`EXPORT_PAGE`] messages, each read from the store as it is taken.
pub async fn user_data_export_streams_a_large_inbox_page_by_page(b: &dyn Backend) {
    const N: usize = 10_000;
    let store = b.store(Retention::default()).await;
    let (data, _) = node(b, store.clone(), "n1").await;
    let alice = user();
    let inbox = StreamKey::inbox(&alice);
    for chunk in 0..N / 500 {
        let appends =
            (0..500).map(|i| store.append(&inbox, draft(&format!("m{}", chunk * 500 + i))));
        for result in futures_util::future::join_all(appends).await {
            result.unwrap();
        }
    }
    let (doc, pages) = read_all(data.export(&alice).await.unwrap()).await;
    let messages = doc["messages"].as_array().unwrap();
    assert_eq!(messages.len(), N);
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m["seq"], i as u64 + 1);
    }
    assert!(
        pages.iter().all(|&n| n as usize <= EXPORT_PAGE),
        "a chunk over a page: {pages:?}"
    );
    assert_eq!(pages.iter().sum::<u64>(), N as u64);
    assert!(pages.len() > N / EXPORT_PAGE, "{} chunks", pages.len());
}

/// Sends racing the erasure: each message is either erased or kept whole
/// — in the inbox with its counts, and listed by the next export.
pub async fn user_data_erase_racing_sends_keeps_or_erases_each_whole(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let (data, _) = node(b, store.clone(), "n1").await;
    let alice = user();
    let inbox = StreamKey::inbox(&alice);
    for i in 0..50 {
        store
            .append(&inbox, draft(&format!("before {i}")))
            .await
            .unwrap();
    }
    let sending = {
        let store = store.clone();
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..200 {
                ids.push(
                    store
                        .append(&inbox, draft(&format!("racing {i}")))
                        .await
                        .unwrap()
                        .id,
                );
            }
            ids
        })
    };
    tokio::task::yield_now().await;
    let erased = data.erase(&alice).await.unwrap();
    let sent = sending.await.unwrap();
    let (doc, _) = read_all(data.export(&alice).await.unwrap()).await;
    let kept: Vec<&Value> = doc["messages"].as_array().unwrap().iter().collect();
    assert_eq!(
        erased.messages + kept.len() as u64,
        250,
        "each message erased or kept, once"
    );
    // What is kept is the tail of what was sent, whole: counted.
    let (counts, _) = store
        .user_counts(&alice, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(counts.unread.values().sum::<i64>(), kept.len() as i64);
    let tail: Vec<String> = sent[sent.len() - kept.len()..]
        .iter()
        .map(|id| id.to_string())
        .collect();
    let kept_ids: Vec<String> = kept
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept_ids, tail);
}
