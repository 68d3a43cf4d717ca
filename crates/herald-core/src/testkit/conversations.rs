//! Suite cases for private conversations and receipts.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{MarkState, Receipt, ReceiptState};
use tokio::sync::mpsc;

use super::{user, Backend};
use crate::{
    BrokerSink, Categories, Conversations, CoreError, Delivery, Inbox, MessageLimits, NewMessage,
    Retention, Selector, Sender, Store,
};

/// Records the receipts a broker hands over.
struct ReceiptSink(mpsc::UnboundedSender<(String, Receipt)>);

impl BrokerSink for ReceiptSink {
    fn deliver(&self, _delivery: Arc<Delivery>) {}
    fn resync(&self) {}
    fn counts_changed(&self, _user: &str) {}
    fn receipt(&self, user: &str, receipt: &Receipt) {
        let _ = self.0.send((user.to_owned(), receipt.clone()));
    }
}

async fn sender(b: &dyn Backend, store: Arc<dyn Store>) -> Sender {
    Sender::new(
        store,
        b.idempotency().await,
        b.blocklist().await,
        b.timers().await,
        MessageLimits::default(),
        Categories::default(),
        Duration::from_secs(60),
    )
}

fn text(body: &str) -> NewMessage {
    NewMessage {
        body: body.into(),
        ..NewMessage::default()
    }
}

/// Bodies and receipts of a page, newest first.
fn bodies(page: &crate::HistoryPage) -> Vec<(String, Option<ReceiptState>)> {
    page.messages
        .iter()
        .map(|e| (e.message.body.clone(), e.receipt))
        .collect()
}

/// Both directions in one page, newest first, paged without gap; the
/// list, most recent first, with unread numbers; delivered and read
/// receipts pushed to the sender and shown in the pages; marking the
/// conversation read empties its unread number and the mailbox count.
pub async fn conversations_both_directions_with_receipts(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let sender = sender(b, store.clone()).await;
    let conversations = Conversations::new(store.clone());
    let inbox = Inbox::new(store.clone(), Categories::default());
    let (alice, bob, carol) = (user(), user(), user());
    let (tx, mut receipts) = mpsc::unbounded_channel();
    let broker = b.broker("receipts", Arc::new(ReceiptSink(tx))).await;
    broker
        .subscribe(std::slice::from_ref(&alice))
        .await
        .unwrap();

    let one = sender
        .send_private(&alice, &bob, text("1"), None, None)
        .await;
    let one = one.unwrap();
    sender
        .send_private(&bob, &alice, text("2"), None, None)
        .await
        .unwrap();
    let three = sender
        .send_private(&alice, &bob, text("3"), None, None)
        .await
        .unwrap();
    sender
        .send_private(&carol, &alice, text("x"), None, None)
        .await
        .unwrap();

    let page = conversations
        .page(&alice, &bob, None, Some(2))
        .await
        .unwrap();
    let sent = Some(ReceiptState::Sent);
    assert_eq!(bodies(&page), [("3".into(), sent), ("2".into(), None)]);
    let rest = conversations
        .page(&alice, &bob, page.next.as_deref(), Some(2))
        .await
        .unwrap();
    assert_eq!(bodies(&rest), [("1".into(), sent)]);
    assert_eq!(rest.next, None);
    // Bob sees the same exchange, his own messages with receipts.
    let his = conversations.page(&bob, &alice, None, None).await.unwrap();
    let expected = [("3".into(), None), ("2".into(), sent), ("1".into(), None)];
    assert_eq!(bodies(&his), expected);

    let list = conversations.list(&alice, None, Some(1)).await.unwrap();
    assert_eq!(list.conversations.len(), 1);
    assert_eq!(list.conversations[0].peer, carol);
    assert_eq!(list.conversations[0].unread, 1);
    let rest = conversations
        .list(&alice, list.next.as_deref(), Some(10))
        .await
        .unwrap();
    assert_eq!(rest.next, None);
    assert_eq!(rest.conversations.len(), 1);
    let with_bob = &rest.conversations[0];
    assert_eq!((with_bob.peer.as_str(), with_bob.unread), (bob.as_str(), 1));
    assert_eq!(with_bob.last.message.body, "3");
    assert_eq!(with_bob.last.receipt, sent);

    // Bob's device acknowledges everything: alice gets `delivered`.
    let bob_last = three.stored[0].seq;
    conversations
        .acknowledged(&bob, "phone", bob_last)
        .await
        .unwrap();
    assert_eq!(
        store
            .acked(&bob, "phone", herald_protocol::Stream::Inbox)
            .await
            .unwrap(),
        bob_last
    );
    let mut got = Vec::new();
    for _ in 0..2 {
        let (to, r) = tokio::time::timeout(Duration::from_secs(5), receipts.recv())
            .await
            .expect("a receipt within 5 s")
            .unwrap();
        assert_eq!(
            (to.as_str(), r.peer.as_str()),
            (alice.as_str(), bob.as_str())
        );
        got.push((r.id, r.state));
    }
    let delivered = ReceiptState::Delivered;
    assert_eq!(got, [(one.id, delivered), (three.id, delivered)]);
    let page = conversations.page(&alice, &bob, None, None).await.unwrap();
    let d = Some(delivered);
    let expected = [("3".into(), d), ("2".into(), None), ("1".into(), d)];
    assert_eq!(bodies(&page), expected);
    // An ack that moves nothing pushes nothing.
    conversations
        .acknowledged(&bob, "phone", bob_last + 5)
        .await
        .unwrap();

    // Bob reads the conversation: `read` receipts, unread numbers drop.
    let changed = inbox
        .mark(&bob, MarkState::Read, &Selector::Peer(alice.clone()))
        .await
        .unwrap();
    assert_eq!(changed, 2);
    let mut got = Vec::new();
    for _ in 0..2 {
        let (_, r) = tokio::time::timeout(Duration::from_secs(5), receipts.recv())
            .await
            .expect("a receipt within 5 s")
            .unwrap();
        got.push((r.id, r.state));
    }
    got.sort();
    let mut want = vec![(one.id, ReceiptState::Read), (three.id, ReceiptState::Read)];
    want.sort();
    assert_eq!(got, want);
    let r = Some(ReceiptState::Read);
    let page = conversations.page(&alice, &bob, None, None).await.unwrap();
    assert_eq!(
        bodies(&page),
        [("3".into(), r), ("2".into(), None), ("1".into(), r)]
    );
    let bobs = conversations.list(&bob, None, None).await.unwrap();
    assert_eq!(bobs.conversations[0].unread, 0);
    let counts = inbox.counts(&bob).await.unwrap();
    assert_eq!(counts.counts().unread_total, 0);
}

/// A blocked sender's message is refused and leaves no trace in the
/// receiver's list; bad peers and cursors are clear errors.
pub async fn conversations_of_a_blocked_sender_stay_empty(b: &dyn Backend) {
    let store = b.store(Retention::default()).await;
    let sender = sender(b, store.clone()).await;
    let conversations = Conversations::new(store.clone());
    let (alice, mallory) = (user(), user());
    b.blocklist().await.block(&alice, &mallory).await.unwrap();
    let refused = sender
        .send_private(&mallory, &alice, text("hi"), None, None)
        .await;
    assert!(matches!(refused, Err(CoreError::Blocked(_))), "{refused:?}");
    let list = conversations.list(&alice, None, None).await.unwrap();
    assert!(list.conversations.is_empty());
    let theirs = conversations.list(&mallory, None, None).await.unwrap();
    assert!(theirs.conversations.is_empty(), "{theirs:?}");
    for bad in [
        conversations
            .page(&alice, "no spaces", None, None)
            .await
            .err(),
        conversations
            .page(&alice, &mallory, Some("x.y"), None)
            .await
            .err(),
        conversations.list(&alice, Some("nope"), None).await.err(),
        conversations.list(&alice, None, Some(0)).await.err(),
    ] {
        assert!(matches!(bad, Some(CoreError::Invalid(_))), "{bad:?}");
    }
}
