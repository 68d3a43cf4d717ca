//! Action buttons across real `herald` processes on a real Redis: a send
//! with `actions`, acts from two nodes at once (the first wins, the other
//! gets `already_acted`), the `changed` (`acted`) frame and the counts on
//! tabs of both nodes, `acted` in history and in a new tab's backlog, the
//! WebSocket `act` and `POST /v1/me/requests` (memory backend), and the
//! send's checks of hostile `actions`; `herald_acts_total` by outcome.

mod common;

use common::process::ProcessNode;
use common::{Api, TestNode};
use futures_util::future::join_all;
use herald_protocol::{ChangedState, ClientFrame, ServerFrame};
use herald_testing::RedisServer;
use serde_json::{json, Value};

fn buttons() -> Value {
    json!([
        {"id": "accept", "label": "Accept", "url": "https://example.com/accept"},
        {"id": "decline", "label": "Decline"}
    ])
}

/// `herald_acts_total` of `node`, by outcome.
async fn acts_counted(node: &impl Api) -> std::collections::BTreeMap<String, f64> {
    let text = node.metrics().await;
    text.lines()
        .filter(|l| l.starts_with("herald_acts_total{"))
        .map(|l| {
            let outcome = l.split("outcome=\"").nth(1).unwrap();
            let outcome = outcome.split('"').next().unwrap().to_owned();
            (outcome, l.rsplit_once(' ').unwrap().1.parse().unwrap())
        })
        .collect()
}

/// Sends an invitation with buttons to `user`; its id.
async fn invite(node: &impl Api, user: &str, body: &str) -> String {
    let (status, reply) = node
        .post(json!({"to": {"users": [user]}, "category": "remind", "body": body, "actions": buttons()}))
        .await;
    assert_eq!(status, 202, "{reply}");
    reply["id"].as_str().unwrap().to_owned()
}

/// The next `changed` frame of `tab` (others skipped).
async fn changed(tab: &mut common::Client) -> herald_protocol::Changed {
    loop {
        if let ServerFrame::Changed(c) = tab.next().await {
            return c;
        }
    }
}

/// The next reply of `tab`: the acting tab's own `changed` frame may come
/// before or after it.
async fn reply_of(tab: &mut common::Client) -> herald_protocol::Reply {
    loop {
        if let ServerFrame::Reply(r) = tab.next().await {
            return r;
        }
    }
}

/// Ten invitations; for each, both nodes act at once through the API
/// (accept on A, decline on B): exactly one 200 and one 409
/// `already_acted` each. Tabs on both nodes get one `changed` (`acted`,
/// the winner's action) per message and counts down to 0; history on
/// either node and a new tab's backlog carry `acted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acts_on_two_nodes_the_first_wins() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let a = ProcessNode::start("node-a", &redis.url(), &[]).await;
    let b = ProcessNode::start("node-b", &redis.url(), &[]).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(invite(&a, "actor", &format!("invite {i}")).await);
    }
    let mut tab_a = a.connect("actor").await;
    let mut tab_b = b.connect("actor").await;
    for tab in [&mut tab_a, &mut tab_b] {
        tab.counts_until(|c| c.unread_total == 10).await;
    }

    let acts = ids.iter().flat_map(|id| {
        [(&a, "accept"), (&b, "decline")].map(|(node, action)| {
            let id = id.clone();
            async move {
                let (status, reply) = node
                    .post_to(
                        "/v1/users/actor/act",
                        json!({"message": id, "action": action}),
                    )
                    .await;
                (id, action, status, reply)
            }
        })
    });
    let mut winners = std::collections::HashMap::new();
    for (id, action, status, reply) in join_all(acts).await {
        match status {
            200 => {
                assert_eq!(reply, json!({"message": id, "acted": action}));
                assert!(winners.insert(id, action).is_none(), "two acts won");
            }
            409 => assert_eq!(reply["error"]["code"], "already_acted", "{reply}"),
            other => panic!("act: {other} {reply}"),
        }
    }
    assert_eq!(winners.len(), 10);
    // Each node counted the acts it answered: 10 won, 10 came second.
    let (on_a, on_b) = (acts_counted(&a).await, acts_counted(&b).await);
    for (outcome, want) in [("acted", 10.0), ("already_acted", 10.0), ("not_found", 0.0)] {
        assert_eq!(
            on_a[outcome] + on_b[outcome],
            want,
            "{outcome}: {on_a:?} {on_b:?}"
        );
    }

    for tab in [&mut tab_a, &mut tab_b] {
        let mut seen = std::collections::HashMap::new();
        while seen.len() < 10 {
            let c = changed(tab).await;
            assert_eq!(c.state, ChangedState::Acted);
            assert_eq!(c.ids.len(), 1);
            seen.insert(c.ids[0].to_string(), c.action.clone().unwrap());
        }
        for (id, action) in &winners {
            assert_eq!(seen[id], *action);
        }
        tab.counts_until(|c| c.unread_total == 0).await;
    }
    let page = b.get("/v1/users/actor/messages").await;
    let listed = page["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 10, "{page}");
    for m in listed {
        let id = m["id"].as_str().unwrap();
        assert_eq!(m["acted"], winners[id], "{m}");
        assert_eq!(m["state"], "read", "{m}");
        assert_eq!(m["actions"], buttons(), "{m}");
    }
    let mut fresh = a
        .connect_with("actor", herald_protocol::Codec::MsgPack, Some("fresh"))
        .await;
    for _ in 0..10 {
        let m = fresh.message().await;
        assert_eq!(m.acted.as_deref(), Some(winners[&m.id.to_string()]));
        assert_eq!(m.actions.len(), 2);
    }
}

/// Over the WebSocket and `POST /v1/me/requests`: an `act` answers ok and
/// every tab gets `changed`; a second act `already_acted`; an unknown
/// action `invalid_field` naming `action`; an unknown message
/// `not_found`; an unknown field of the frame `bad_request`; a `sync`
/// replays the messages with `acted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn act_over_websocket_and_requests() {
    let node = TestNode::start().await;
    let first = invite(&node, "wsact", "one").await;
    let second = invite(&node, "wsact", "two").await;
    let mut tab = node.connect("wsact").await;
    let mut other = node.connect("wsact").await;
    tab.counts_until(|c| c.unread_total == 2).await;
    let act = |rid: i64, message: &str, action: &str| ClientFrame::Act {
        rid: rid.into(),
        message: message.parse().unwrap(),
        action: action.into(),
    };
    tab.send(act(1, &first, "accept")).await;
    let reply = reply_of(&mut tab).await;
    assert!(reply.ok, "{reply:?}");
    let c = changed(&mut other).await;
    assert_eq!(
        (c.state, c.action.as_deref(), c.ids[0].to_string()),
        (ChangedState::Acted, Some("accept"), first.clone())
    );
    other.counts_until(|c| c.unread_total == 1).await;
    tab.send(act(2, &first, "decline")).await;
    let reply = reply_of(&mut tab).await;
    assert_eq!(
        reply.error.unwrap().code,
        herald_protocol::ErrorCode::AlreadyActed
    );
    tab.send(act(3, &second, "maybe")).await;
    let error = reply_of(&mut tab).await.error.unwrap();
    assert_eq!(error.code, herald_protocol::ErrorCode::InvalidField);
    assert!(error.message.starts_with("action:"), "{}", error.message);
    tab.send(act(4, &uuid::Uuid::now_v7().to_string(), "accept"))
        .await;
    let error = reply_of(&mut tab).await.error.unwrap();
    assert_eq!(error.code, herald_protocol::ErrorCode::NotFound);

    let request = |frame: Value| {
        let url = node.http(&format!(
            "/v1/me/requests?device=web&token={}",
            node.token("wsact")
        ));
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .json(&frame)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, reply) =
        request(json!({"type": "act", "rid": 5, "message": second, "action": "decline"})).await;
    assert_eq!((status, &reply["ok"]), (200, &json!(true)), "{reply}");
    let c = changed(&mut other).await;
    assert_eq!(c.action.as_deref(), Some("decline"));
    other.counts_until(|c| c.unread_total == 0).await;
    let (_, reply) =
        request(json!({"type": "act", "rid": 6, "message": second, "action": "accept"})).await;
    assert_eq!(reply["error"]["code"], "already_acted", "{reply}");
    let (status, reply) = request(
        json!({"type": "act", "rid": 7, "message": second, "action": "accept", "extra": 1}),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("extra"),
        "{reply}"
    );

    // A `sync` from the start replays both with the action taken.
    other
        .send(ClientFrame::Sync {
            rid: 8.into(),
            since: 0,
            since_all: None,
            since_id: None,
            since_all_id: None,
        })
        .await;
    let mut replayed = std::collections::HashMap::new();
    while replayed.len() < 2 {
        if let ServerFrame::Message(m) = other.next().await {
            replayed.insert(m.id.to_string(), m.acted);
        }
    }
    assert_eq!(replayed[&first].as_deref(), Some("accept"));
    assert_eq!(replayed[&second].as_deref(), Some("decline"));

    // Every act answered, WebSocket and requests alike, counted by
    // outcome (the frame refused for its unknown field is no act).
    let want = [
        ("acted", 2.0),
        ("already_acted", 2.0),
        ("invalid", 1.0),
        ("not_found", 1.0),
        ("error", 0.0),
    ];
    let counted = acts_counted(&node).await;
    assert_eq!(
        counted,
        want.map(|(o, n)| (o.to_owned(), n)).into_iter().collect(),
    );
}

/// Hostile `actions` on a send are 400s naming the field, and nothing is
/// stored; the API's act refuses an unknown field and a bad id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_actions_are_refused() {
    let node = TestNode::start().await;
    let long = "x".repeat(65);
    let cases = [
        (
            json!([{"id": "a", "label": "A", "url": "javascript:alert(document.cookie)"}]),
            "actions[0].url",
        ),
        (
            json!([{"id": "a", "label": "A"}, {"id": "b", "label": "B", "url": "data:text/html,<script>x</script>"}]),
            "actions[1].url",
        ),
        (
            json!([{"id": "a", "label": "A"}, {"id": "b", "label": "B"}, {"id": "c", "label": "C"}, {"id": "d", "label": "D"}]),
            "actions:",
        ),
        (
            json!([{"id": "a", "label": "A"}, {"id": "a", "label": "B"}]),
            "actions[1].id",
        ),
        (json!([{"id": "a", "label": long}]), "actions[0].label"),
        (
            json!([{"id": "a", "label": "A", "onclick": "x"}]),
            "actions",
        ),
    ];
    for (actions, field) in cases {
        let (status, reply) = node
            .post(json!({"to": {"users": ["hostile"]}, "category": "remind", "body": "x", "actions": actions}))
            .await;
        assert_eq!(status, 400, "{actions}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{actions}: {message}");
    }
    let page = node.get("/v1/users/hostile/messages").await;
    assert_eq!(page["messages"], json!([]), "nothing stored: {page}");

    let id = invite(&node, "hostile", "ok").await;
    for body in [
        json!({"message": id, "action": "accept", "extra": true}),
        json!({"message": "not-a-uuid", "action": "accept"}),
        json!({"message": id}),
    ] {
        let (status, reply) = node.post_to("/v1/users/hostile/act", body.clone()).await;
        assert_eq!(status, 400, "{body}: {reply}");
    }
    let (status, reply) = node
        .post_to(
            "/v1/users/hostile/act",
            json!({"message": id, "action": "nope"}),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("action:"),
        "{reply}"
    );
    let (status, reply) = node
        .post_to(
            "/v1/users/hostile/act",
            json!({"message": uuid::Uuid::now_v7(), "action": "accept"}),
        )
        .await;
    assert_eq!(
        (status, &reply["error"]["code"]),
        (404, &json!("not_found")),
        "{reply}"
    );
}
