//! Private conversations over the WebSocket and the server API: two users
//! on two real `herald` processes (Redis backend) and on one in-memory
//! node, with delivered and read receipts, a sender who was offline, and
//! unread numbers that follow marks.

mod common;

use common::process::ProcessNode;
use common::{Api, Client, TestNode};
use herald_protocol::{
    ClientFrame, MarkSelector, MarkState, Receipt, ReceiptState, Reply, ServerFrame, Stream,
};
use herald_testing::RedisServer;
use uuid::Uuid;

/// The next `receipt` frame (counts frames skipped; anything else fails).
async fn receipt(client: &mut Client) -> Receipt {
    match client.next().await {
        ServerFrame::Receipt(r) => r,
        other => panic!("expected a receipt, got {other:?}"),
    }
}

async fn ack(client: &mut Client, seq: u64) {
    client
        .send(ClientFrame::Ack {
            seq,
            stream: Stream::Inbox,
        })
        .await;
}

async fn mark_peer_read(client: &mut Client, rid: i64, peer: &str) -> Reply {
    client
        .send(ClientFrame::Mark {
            rid: rid.into(),
            state: MarkState::Read,
            selector: MarkSelector {
                peer: Some(peer.into()),
                ..Default::default()
            },
            until: None,
            tags: None,
            severity: None,
        })
        .await;
    client.reply().await
}

async fn conversation(client: &mut Client, rid: i64, peer: &str) -> Reply {
    client
        .send(ClientFrame::Conversation {
            rid: rid.into(),
            peer: peer.into(),
            before: None,
            limit: None,
        })
        .await;
    let reply = client.reply().await;
    assert!(reply.ok, "{reply:?}");
    reply
}

/// (body, receipt) of each message of a page, newest first.
fn page(reply: &Reply) -> Vec<(String, Option<ReceiptState>)> {
    reply
        .messages
        .as_ref()
        .expect("messages")
        .iter()
        .map(|e| (e.message.body.clone(), e.receipt))
        .collect()
}

/// Sends `body` from `from` to `to`; its id and seq in `to`'s inbox.
async fn send(from: &mut Client, to: &str, body: &str) -> (Uuid, u64) {
    let reply = from.send_private("s", to, body).await;
    assert!(reply.ok, "{reply:?}");
    (reply.id.unwrap(), reply.seq.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_across_two_nodes_with_receipts_and_an_offline_sender() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    let mut ana = a.connect("ana").await;
    let mut ben = b.connect("ben").await;

    // Delivered: ben's device acknowledges; ana, on the other node, hears.
    let (hi, seq) = send(&mut ana, "ben", "hi").await;
    let m = ben.message().await;
    assert_eq!((m.id, m.from.as_deref()), (hi, Some("ana")));
    ack(&mut ben, seq).await;
    let r = receipt(&mut ana).await;
    assert_eq!(
        (r.peer.as_str(), r.id, r.state),
        ("ben", hi, ReceiptState::Delivered)
    );

    // Ana goes offline; ben answers and reads the conversation.
    drop(ana);
    send(&mut ben, "ana", "hello").await;
    let reply = mark_peer_read(&mut ben, 2, "ana").await;
    assert_eq!((reply.ok, reply.changed), (true, Some(1)), "{reply:?}");

    // Back online (on the other node), ana sees both, with the receipt.
    let mut ana = b.connect("ana").await;
    assert_eq!(ana.message().await.body, "hello");
    let reply = conversation(&mut ana, 3, "ben").await;
    let read = Some(ReceiptState::Read);
    assert_eq!(page(&reply), [("hello".into(), None), ("hi".into(), read)]);
    assert_eq!(reply.next, Some(None));
    ana.send(ClientFrame::Conversations {
        rid: 4.into(),
        before: None,
        limit: None,
    })
    .await;
    let list = ana.reply().await.conversations.expect("conversations");
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].peer.as_str(), list[0].unread), ("ben", 1));
    assert_eq!(list[0].last.message.body, "hello");

    // Ana reads it: ben gets `read`, ana's counts and unread drop.
    let reply = mark_peer_read(&mut ana, 5, "ben").await;
    assert_eq!(reply.changed, Some(1), "{reply:?}");
    let r = receipt(&mut ben).await;
    assert_eq!((r.peer.as_str(), r.state), ("ana", ReceiptState::Read));
    ana.counts_until(|c| c.unread_total == 0).await;
    let list = a.get("/v1/users/ana/conversations").await;
    assert_eq!(list["conversations"][0]["unread"], 0, "{list}");
    assert!(list["next"].is_null(), "{list}");

    // The server API pages the same conversation from ben's side.
    let view = a.get("/v1/users/ben/conversations/ana?limit=1").await;
    let messages = view["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{view}");
    assert_eq!(
        (
            messages[0]["body"].as_str(),
            messages[0]["receipt"].as_str()
        ),
        (Some("hello"), Some("read"))
    );
    let next = view["next"].as_str().expect("a next page");
    let rest = a
        .get(&format!("/v1/users/ben/conversations/ana?before={next}"))
        .await;
    assert_eq!(rest["messages"][0]["body"], "hi", "{rest}");
    assert!(rest["messages"][0].get("receipt").is_none(), "{rest}");
    let bad = a.get("/v1/users/ben/conversations/ana?before=zz").await;
    assert_eq!(bad["error"]["code"], "invalid_field", "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_on_the_memory_backend() {
    let node = TestNode::start().await;
    let mut cy = node.connect("cy").await;
    let mut dee = node.connect("dee").await;
    let (id, seq) = send(&mut cy, "dee", "ping").await;
    assert_eq!(dee.message().await.id, id);
    ack(&mut dee, seq).await;
    assert_eq!(receipt(&mut cy).await.state, ReceiptState::Delivered);
    mark_peer_read(&mut dee, 1, "cy").await;
    let r = receipt(&mut cy).await;
    assert_eq!((r.id, r.state), (id, ReceiptState::Read));
    let reply = conversation(&mut cy, 2, "dee").await;
    assert_eq!(page(&reply), [("ping".into(), Some(ReceiptState::Read))]);
}
