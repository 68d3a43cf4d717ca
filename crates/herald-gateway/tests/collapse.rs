//! Collapse across two real `herald` processes on one real Redis: a send
//! with a `group_key` replaces the receiver's unread message of its group,
//! and every tab of the receiver, on either node and in either codec, is
//! told with a `changed` frame and gets counts that count the group once.

mod common;

use common::process::ProcessNode;
use common::{Api, Client};
use herald_protocol::{
    Changed, ChangedState, ClientFrame, Codec, MarkSelector, MarkState, Message, ServerFrame,
};
use herald_testing::RedisServer;

/// The next `message` frame and the `changed` frame right after it.
async fn replacing(tab: &mut Client) -> (Message, Changed) {
    let message = tab.message().await;
    match tab.next().await {
        ServerFrame::Changed(changed) => (message, changed),
        other => panic!("expected changed after {message:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_message_is_told_to_every_tab_on_every_node() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    let mut tab_a = a.connect("ivy").await;
    let mut tab_b = b.connect_with("ivy", Codec::MsgPack, None).await;
    for tab in [&mut tab_a, &mut tab_b] {
        tab.counts_until(|c| c.unread_total == 0).await;
    }
    let like = |body: &str| {
        serde_json::json!({"to": {"users": ["ivy"]}, "category": "remind",
            "body": body, "group_key": "likes:post-7"})
    };
    let (status, first) = a.post(like("Ann liked your post")).await;
    assert_eq!(status, 202, "{first}");
    for tab in [&mut tab_a, &mut tab_b] {
        let m = tab.message().await;
        assert_eq!((m.collapsed, m.replaces), (None, None));
        assert_eq!(m.group_key.as_deref(), Some("likes:post-7"));
        tab.counts_until(|c| c.unread_total == 1).await;
    }
    // The second like goes through the other node.
    let (status, second) = b.post(like("Ann and Bo liked your post")).await;
    assert_eq!(status, 202, "{second}");
    for tab in [&mut tab_a, &mut tab_b] {
        let (m, changed) = replacing(tab).await;
        assert_eq!(m.id.to_string(), second["id"].as_str().unwrap());
        assert_eq!(m.collapsed, Some(2));
        assert_eq!(
            m.replaces.unwrap().to_string(),
            first["id"].as_str().unwrap()
        );
        assert_eq!(changed.state, ChangedState::Replaced);
        assert_eq!(changed.ids, vec![m.replaces.unwrap()]);
        assert_eq!(changed.by, Some(m.id));
        let c = tab.counts_until(|c| c.unread_total == 1).await;
        assert_eq!((c.unread["remind"], c.unseen_total), (1, 1));
    }
    // A batch of two more: each replaces the one before.
    let (status, batch) = a
        .post_to(
            "/v1/messages/batch",
            serde_json::json!({"messages": [like("three"), like("four")]}),
        )
        .await;
    assert_eq!(status, 202, "{batch}");
    for tab in [&mut tab_a, &mut tab_b] {
        assert_eq!(replacing(tab).await.0.collapsed, Some(3));
        assert_eq!(replacing(tab).await.0.collapsed, Some(4));
        tab.counts_until(|c| c.unread_total == 1).await;
    }
    let history = b.get("/v1/users/ivy/messages").await;
    let listed = history["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{history}");
    assert_eq!(listed[0]["collapsed"], 4);
    assert_eq!(listed[0]["body"], "four");

    // A private `send` with the key, once the item is read: a fresh group.
    tab_a
        .send(ClientFrame::Mark {
            rid: 1.into(),
            state: MarkState::Read,
            selector: MarkSelector {
                all: Some(true),
                ..Default::default()
            },
            until: None,
            tags: None,
            severity: None,
        })
        .await;
    assert!(tab_a.reply().await.ok);
    tab_b.counts_until(|c| c.unread_total == 0).await;
    let mut jo = b.connect("jo").await;
    jo.send(ClientFrame::Send {
        rid: 2.into(),
        to: "ivy".into(),
        body: "Jo liked your post".into(),
        title: None,
        data: None,
        key: None,
        expires_at: None,
        group_key: Some("likes:post-7".into()),
        tags: None,
        severity: None,
    })
    .await;
    assert!(jo.reply().await.ok);
    for tab in [&mut tab_a, &mut tab_b] {
        let m = tab.message().await;
        assert_eq!((m.collapsed, m.replaces), (None, None), "a fresh group");
        tab.counts_until(|c| c.unread_total == 1).await;
    }
    // A new device catching up is told of every replacement too.
    let mut late = a.connect_with("ivy", Codec::Json, Some("tablet")).await;
    let mut told = 0;
    loop {
        match late.next_any().await {
            ServerFrame::Changed(c) => {
                assert_eq!(c.state, ChangedState::Replaced);
                told += 1;
            }
            ServerFrame::Counts(c) => {
                assert_eq!(c.unread_total, 1);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(told, 3);
}

/// `group_key` is checked like every field: the same words over the API,
/// a batch item and the WebSocket.
#[tokio::test]
async fn a_bad_group_key_is_refused_naming_the_field() {
    let node = common::TestNode::start().await;
    let mut ws = node.connect("kai").await;
    let expected = "group_key: must be 1 to 128 characters long";
    for bad in [String::new(), "é".repeat(129)] {
        let (status, body) = node
            .post(
                serde_json::json!({"to": {"users": ["lu"]}, "category": "remind",
                "body": "b", "group_key": bad}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["message"], expected);
        assert_eq!(body["error"]["code"], "invalid_field");
        let (status, body) = node
            .post_to(
                "/v1/messages/batch",
                serde_json::json!({"messages": [{"to": {"users": ["lu"]},
                    "category": "remind", "body": "b", "group_key": bad}]}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["message"], format!("messages[0]: {expected}"));
        ws.send_raw(
            serde_json::to_vec(&serde_json::json!({"type": "send", "rid": 1, "to": "lu",
                "body": "b", "group_key": bad}))
            .unwrap(),
        )
        .await;
        let error = ws.reply().await.error.expect("an error reply");
        assert_eq!(error.message, expected);
    }
    // 128 characters (of two bytes each) are fine.
    let (status, body) = node
        .post(
            serde_json::json!({"to": {"users": ["lu"]}, "category": "remind",
            "body": "b", "group_key": "é".repeat(128)}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}
