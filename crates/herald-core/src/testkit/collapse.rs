//! Suite cases for collapse (`crate::collapse`): a message with a
//! `group_key` replaces the receiver's unread message of its group, in the
//! append's atomic step, on every backend.

use herald_protocol::{Category, MarkState, Message};
use uuid::Uuid;

use super::{user, Backend, RecordingSink};
use crate::{Categories, Draft, HistoryQuery, Inbox, Retention, Selector, StreamKey};

fn grouped(key: Option<&str>, body: &str) -> Draft {
    let mut draft = Draft::new(Category::REMIND, body);
    draft.group_key = key.map(str::to_owned);
    draft
}

/// The user's `remind` messages as history lists them, newest first.
async fn listed(inbox: &Inbox, user: &str) -> Vec<Message> {
    let query = HistoryQuery {
        category: Some("remind".into()),
        limit: Some(200),
        ..Default::default()
    };
    let page = inbox.history(user, query).await.unwrap();
    page.messages.into_iter().map(|e| e.message).collect()
}

async fn unread_remind(inbox: &Inbox, user: &str) -> u64 {
    let counts = inbox.counts(user).await.unwrap().counts();
    assert_eq!(counts.unread_total, counts.unread["remind"], "only reminds");
    counts.unread["remind"]
}

pub async fn collapse_replaces_the_unread_item_of_its_group(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let inbox = Inbox::new(store.clone(), Categories::default());
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let (sink, mut live) = RecordingSink::new();
    let broker = b.broker("collapse-node", sink).await;
    broker
        .subscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();

    let first = store
        .append(&key, grouped(Some("likes:1"), "a"))
        .await
        .unwrap();
    assert_eq!(
        (first.collapsed, first.replaces),
        (None, None),
        "a first message"
    );
    assert_eq!(live.next().await.message.collapsed, None);
    let second = store
        .append(&key, grouped(Some("likes:1"), "b"))
        .await
        .unwrap();
    assert_eq!(second.collapsed, Some(2));
    assert_eq!(second.replaces, Some(first.id));
    assert_eq!(second.group_key.as_deref(), Some("likes:1"));
    // Pushed and stored as returned: the same fields reach every node and
    // every later read.
    let pushed = live.next().await;
    assert_eq!(pushed.message, second);
    let stored = store.find(&key, &[second.id]).await.unwrap();
    assert_eq!(stored, vec![second.clone()]);
    let ids = |ms: &[Message]| ms.iter().map(|m| m.id).collect::<Vec<Uuid>>();
    assert_eq!(ids(&listed(&inbox, &alice).await), vec![second.id]);
    assert_eq!(unread_remind(&inbox, &alice).await, 1);
    // The replaced message is gone: a mark does not reach it.
    let marked = inbox
        .mark(&alice, MarkState::Read, &Selector::Ids(vec![first.id]))
        .await
        .unwrap();
    assert_eq!(marked, 0, "a replaced message cannot be marked");

    // Another group, and a message without a key, are counted apart.
    let other = store
        .append(&key, grouped(Some("likes:2"), "c"))
        .await
        .unwrap();
    assert_eq!(other.collapsed, None);
    let plain = store.append(&key, grouped(None, "d")).await.unwrap();
    let plain2 = store.append(&key, grouped(None, "d")).await.unwrap();
    assert_eq!((plain.collapsed, plain2.replaces), (None, None));
    assert_eq!(unread_remind(&inbox, &alice).await, 4);

    // Seen is still unread: replaced.
    inbox
        .mark(&alice, MarkState::Seen, &Selector::Ids(vec![second.id]))
        .await
        .unwrap();
    let third = store
        .append(&key, grouped(Some("likes:1"), "e"))
        .await
        .unwrap();
    assert_eq!(
        (third.collapsed, third.replaces),
        (Some(3), Some(second.id))
    );
    assert_eq!(unread_remind(&inbox, &alice).await, 4);

    // Once read, the next send starts a fresh group.
    inbox
        .mark(&alice, MarkState::Read, &Selector::Ids(vec![third.id]))
        .await
        .unwrap();
    assert_eq!(unread_remind(&inbox, &alice).await, 3);
    let fresh = store
        .append(&key, grouped(Some("likes:1"), "f"))
        .await
        .unwrap();
    assert_eq!((fresh.collapsed, fresh.replaces), (None, None));
    assert_eq!(unread_remind(&inbox, &alice).await, 4);
    assert_eq!(
        ids(&listed(&inbox, &alice).await),
        vec![fresh.id, third.id, plain2.id, plain.id, other.id],
        "the read item stays, the replaced ones left"
    );
    // Archived is not unread either.
    inbox
        .mark(&alice, MarkState::Archived, &Selector::Ids(vec![other.id]))
        .await
        .unwrap();
    let after_archive = store
        .append(&key, grouped(Some("likes:2"), "g"))
        .await
        .unwrap();
    assert_eq!(after_archive.collapsed, None);

    // Groups are per receiver: bob's first message of the key is his first.
    let bob = user();
    let his = store
        .append(&StreamKey::inbox(&bob), grouped(Some("likes:1"), "h"))
        .await
        .unwrap();
    assert_eq!(his.collapsed, None);
}

/// 50 sends to one group at once: one unread item that stands for 50,
/// counted once; each append saw the one before it. (The Redis backend's
/// appends are one script each whichever node sends them, so a node is a
/// connection like any other here.)
pub async fn collapse_counts_a_group_once_under_concurrent_sends(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let inbox = Inbox::new(store.clone(), Categories::default());
    let alice = user();
    let key = StreamKey::inbox(&alice);
    let sends = (0..50).map(|i| {
        let store = store.clone();
        let key = key.clone();
        tokio::spawn(async move {
            store
                .append(&key, grouped(Some("likes:post"), &format!("{i}")))
                .await
                .unwrap()
        })
    });
    let sent: Vec<Message> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let mut collapsed: Vec<u32> = sent.iter().map(|m| m.collapsed.unwrap_or(1)).collect();
    collapsed.sort_unstable();
    assert_eq!(
        collapsed,
        (1..=50).collect::<Vec<u32>>(),
        "each saw one more"
    );
    let listed = listed(&inbox, &alice).await;
    assert_eq!(listed.len(), 1, "one item: {listed:?}");
    assert_eq!(listed[0].collapsed, Some(50));
    assert_eq!(unread_remind(&inbox, &alice).await, 1);
    // Each replaced message names the one before it: one chain of 50.
    let newest = listed[0].clone();
    let by_id: std::collections::HashMap<Uuid, &Message> = sent.iter().map(|m| (m.id, m)).collect();
    let mut link = Some(&newest);
    let mut chain = 0;
    while let Some(m) = link {
        chain += 1;
        link = m.replaces.map(|id| by_id[&id]);
    }
    assert_eq!(chain, 50);
}

/// A publish with a `group_key` collapses in each subscriber's inbox: the
/// key travels with the durable job.
pub async fn collapse_applies_in_each_subscribers_inbox_of_a_publish(b: &dyn Backend) {
    let topics = b.topics().await;
    let store = b.store(Retention::default()).await;
    let inbox = Inbox::new(store.clone(), Categories::default());
    let (fan_out, _worker) = super::fan_out(b, store.clone(), 2).await;
    let topic = super::topics::topic();
    let subscribers: Vec<String> = (0..3).map(|_| user()).collect();
    for u in &subscribers {
        topics.subscribe(u, &topic).await.unwrap();
    }
    for body in ["chapter 1 is out", "chapters 1 and 2 are out"] {
        let message = crate::NewMessage {
            group_key: Some("chapters".into()),
            ..super::news(body)
        };
        let published = fan_out.publish("api", &topic, message, None).await.unwrap();
        super::until_done(&fan_out, published.job).await;
    }
    for u in &subscribers {
        let query = HistoryQuery {
            category: Some("resource_subscription".into()),
            ..Default::default()
        };
        let page = inbox.history(u, query).await.unwrap();
        assert_eq!(page.messages.len(), 1, "{u}: {page:?}");
        let m = &page.messages[0].message;
        assert_eq!(
            (m.collapsed, m.body.as_str()),
            (Some(2), "chapters 1 and 2 are out")
        );
        let counts = inbox.counts(u).await.unwrap().counts();
        assert_eq!(counts.unread["resource_subscription"], 1, "{u}");
    }
}
