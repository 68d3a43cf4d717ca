//! A device's life against two scripted nodes (plain WebSocket servers
//! writing the protocol's frames): it is welcomed, acknowledges what it
//! gets, resumes with `sync` from the seq and the id it has, and after a
//! close reconnects to the other node and resumes there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use herald_harness::{frames, session, Backoff, Ctx, Device, Dial, Observer, Setup, Ws};
use herald_protocol::{ClientFrame, Codec, Counts, Reply, Rid, ServerFrame, Stream, Welcome};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;
use uuid::Uuid;

type ServerWs = WebSocketStream<TcpStream>;

const WAIT: Duration = Duration::from_secs(10);

fn text(frame: ServerFrame) -> WsMessage {
    let bytes = Codec::Json.encode_server(&frame);
    WsMessage::Text(String::from_utf8(bytes.to_vec()).unwrap().into())
}

fn welcome(node: &str) -> WsMessage {
    text(ServerFrame::Welcome(Welcome {
        conn_id: Uuid::nil(),
        user_id: "u".into(),
        node_id: node.into(),
        heartbeat_ms: 25_000,
        last_seq: 0,
        last_all_seq: 0,
    }))
}

fn counts() -> WsMessage {
    text(ServerFrame::Counts(Counts {
        unread: BTreeMap::new(),
        unread_total: 0,
        unseen_total: 0,
        unread_by_severity: Default::default(),
    }))
}

fn message(seq: u64, id: Uuid) -> WsMessage {
    let frame = serde_json::json!({
        "type": "message", "seq": seq, "stream": "inbox", "id": id,
        "category": "system", "body": "x", "ts": "2026-11-28T10:00:00Z"
    });
    text(serde_json::from_value(frame).unwrap())
}

/// The `sync` a device with `seq` (message `id`) of its inbox resumes with.
fn resume_from(seq: u64, id: Uuid) -> ClientFrame {
    ClientFrame::Sync {
        rid: "resume".into(),
        since: seq,
        since_all: None,
        since_id: Some(id),
        since_all_id: None,
    }
}

/// The client frames up to and including its `sync`, which is answered.
async fn read_until_sync(ws: &mut ServerWs) -> Vec<ClientFrame> {
    let mut got = Vec::new();
    while let Some(Ok(msg)) = ws.next().await {
        let WsMessage::Text(t) = msg else { continue };
        let frame = Codec::Json.decode_client(t.as_bytes()).unwrap();
        let sync = matches!(frame, ClientFrame::Sync { .. });
        got.push(frame);
        if sync {
            ws.send(text(ServerFrame::Reply(Reply::ok(Rid::Str(
                "resume".into(),
            )))))
            .await
            .unwrap();
            return got;
        }
    }
    panic!("the connection ended before a sync: {got:?}");
}

/// What a node's script read, and the connection, which the node then
/// reads to its end.
type Played = (Vec<ClientFrame>, ServerWs);

/// A node at a free port that plays `script` on its first connection and
/// hands over the client frames it read.
async fn node<F>(script: F) -> (SocketAddr, mpsc::Receiver<Vec<ClientFrame>>)
where
    F: FnOnce(ServerWs) -> BoxFuture<'static, Played> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        let (got, mut ws) = script(ws).await;
        let _ = tx.send(got).await;
        while let Some(Ok(_)) = ws.next().await {}
    });
    (addr, rx)
}

struct PlainDial;

impl Dial for PlainDial {
    fn dial<'a>(
        &'a self,
        url: &'a str,
        _dev: &'a Device,
    ) -> BoxFuture<'a, anyhow::Result<(Ws, Welcome)>> {
        Box::pin(async move {
            let addr = url.trim_start_matches("ws://").trim_end_matches("/ws");
            let stream = TcpStream::connect(addr).await?;
            let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await?;
            let welcome = frames::welcome(&mut ws, Codec::Json).await?;
            Ok((ws, welcome))
        })
    }

    fn codec(&self) -> Codec {
        Codec::Json
    }
}

/// What the device lived: the nodes that welcomed it, how its
/// connections ended, its resumes.
#[derive(Default)]
struct Seen {
    welcomed: Mutex<Vec<String>>,
    ended: Mutex<Vec<Option<u16>>>,
    resumed: Mutex<u32>,
    reconnect: Mutex<Vec<u64>>,
}

impl Observer for Seen {
    fn welcomed(&self, _dev: &Device, _node: usize, welcome: &Welcome) {
        self.welcomed.lock().unwrap().push(welcome.node_id.clone());
    }

    fn ended(&self, _dev: &Device, code: Option<u16>) {
        self.ended.lock().unwrap().push(code);
    }

    fn resumed(&self, _dev: &Device) {
        *self.resumed.lock().unwrap() += 1;
    }

    fn reconnect(&self, _dev: &Device, after_ms: u64) {
        self.reconnect.lock().unwrap().push(after_ms);
    }

    fn protocol_error(&self, _dev: &Device, what: &str) {
        panic!("{what}");
    }
}

#[tokio::test]
async fn a_device_acknowledges_resumes_and_moves_to_another_node_after_a_close() {
    let id = Uuid::from_u128(7);
    let (a, mut from_a) = node(move |mut ws| {
        Box::pin(async move {
            ws.send(welcome("a")).await.unwrap();
            ws.send(message(1, id)).await.unwrap();
            ws.send(counts()).await.unwrap();
            let got = read_until_sync(&mut ws).await;
            let close = CloseFrame {
                code: CloseCode::from(4008),
                reason: "slow".into(),
            };
            ws.close(Some(close)).await.unwrap();
            (got, ws)
        })
    })
    .await;
    let (b, mut from_b) = node(|mut ws| {
        Box::pin(async move {
            ws.send(welcome("b")).await.unwrap();
            ws.send(counts()).await.unwrap();
            let got = read_until_sync(&mut ws).await;
            (got, ws)
        })
    })
    .await;
    let seen = Arc::new(Seen::default());
    let (stop, stopped) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        dial: Arc::new(PlainDial),
        urls: vec![format!("ws://{a}/ws"), format!("ws://{b}/ws")],
        backoff: Backoff::new(10, 20),
        ack_delay: Duration::ZERO,
        stop: stopped,
        observer: seen.clone(),
    });
    let setup = Setup {
        name: Some("phone".into()),
        ..Setup::default()
    };
    let dev = Device::with(0, "u".into(), setup);
    let life = tokio::spawn(session::run(dev.clone(), 0, ctx, None));

    let at_a = tokio::time::timeout(WAIT, from_a.recv()).await.unwrap();
    let sync_from_1 = resume_from(1, id);
    let ack_1 = ClientFrame::Ack {
        seq: 1,
        stream: Stream::Inbox,
    };
    assert_eq!(at_a.unwrap(), [ack_1, sync_from_1.clone()]);
    let at_b = tokio::time::timeout(WAIT, from_b.recv()).await.unwrap();
    assert_eq!(at_b.unwrap(), [sync_from_1]);
    tokio::time::timeout(WAIT, async {
        while *seen.resumed.lock().unwrap() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();

    assert_eq!(*seen.welcomed.lock().unwrap(), ["a", "b"]);
    assert_eq!(*seen.ended.lock().unwrap(), [Some(4008)]);
    assert!(dev.online());
    let received = dev.received("u");
    assert_eq!(received.messages, [(1, id)]);
    assert!(received.faults.clean(), "{:?}", received.faults);
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, life).await.unwrap().unwrap();
    assert!(!dev.online());
}

/// A drain or a rebalancing move: the `reconnect` frame's delay, not the
/// backoff's (10–20 ms here), passes before the device tries again.
#[tokio::test]
async fn a_reconnect_frame_is_seen_and_its_delay_waited() {
    let closed_at = Arc::new(Mutex::new(None));
    let (a, _from_a) = node({
        let closed_at = closed_at.clone();
        move |mut ws| {
            Box::pin(async move {
                ws.send(welcome("a")).await.unwrap();
                ws.send(counts()).await.unwrap();
                let got = read_until_sync(&mut ws).await;
                let after = ServerFrame::Reconnect { after_ms: 300 };
                ws.send(text(after)).await.unwrap();
                let close = CloseFrame {
                    code: CloseCode::Away,
                    reason: "".into(),
                };
                ws.close(Some(close)).await.unwrap();
                *closed_at.lock().unwrap() = Some(tokio::time::Instant::now());
                (got, ws)
            })
        }
    })
    .await;
    let (b, mut from_b) = node(|mut ws| {
        Box::pin(async move {
            ws.send(welcome("b")).await.unwrap();
            ws.send(counts()).await.unwrap();
            (read_until_sync(&mut ws).await, ws)
        })
    })
    .await;
    let seen = Arc::new(Seen::default());
    let (stop, stopped) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        dial: Arc::new(PlainDial),
        urls: vec![format!("ws://{a}/ws"), format!("ws://{b}/ws")],
        backoff: Backoff::new(10, 20),
        ack_delay: Duration::ZERO,
        stop: stopped,
        observer: seen.clone(),
    });
    let dev = Device::new(0, "u".into());
    let life = tokio::spawn(session::run(dev.clone(), 0, ctx, None));
    tokio::time::timeout(WAIT, from_b.recv()).await.unwrap();
    let waited = closed_at.lock().unwrap().expect("a closed").elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert_eq!(*seen.reconnect.lock().unwrap(), [300]);
    assert_eq!(*seen.ended.lock().unwrap(), [Some(1001)]);
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, life).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_held_device_neither_reads_nor_writes_until_let_go() {
    let id = Uuid::from_u128(9);
    let quiet = Arc::new(tokio::sync::Notify::new());
    let (a, mut from_a) = node({
        let quiet = quiet.clone();
        move |mut ws| {
            Box::pin(async move {
                ws.send(welcome("a")).await.unwrap();
                ws.send(message(1, id)).await.unwrap();
                ws.send(counts()).await.unwrap();
                let silence = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
                assert!(silence.is_err(), "a held device wrote {silence:?}");
                quiet.notify_one();
                (read_until_sync(&mut ws).await, ws)
            })
        }
    })
    .await;
    let (stop, stopped) = watch::channel(false);
    let seen = Arc::new(Seen::default());
    let ctx = Arc::new(Ctx {
        dial: Arc::new(PlainDial),
        urls: vec![format!("ws://{a}/ws")],
        backoff: Backoff::new(10, 20),
        ack_delay: herald_harness::SDK_ACK_DELAY,
        stop: stopped,
        observer: seen.clone(),
    });
    let setup = Setup {
        held: true,
        ..Setup::default()
    };
    let dev = Device::with(0, "u".into(), setup);
    let life = tokio::spawn(session::run(dev.clone(), 0, ctx, None));
    tokio::time::timeout(WAIT, quiet.notified()).await.unwrap();
    assert!(dev.received("u").messages.is_empty(), "read while held");
    dev.hold(false);
    let at_a = tokio::time::timeout(WAIT, from_a.recv()).await.unwrap();
    // The sync goes out at once; the ack of the batch within its delay.
    let sync_from_1 = resume_from(1, id);
    assert_eq!(at_a.unwrap(), [sync_from_1]);
    assert_eq!(dev.received("u").messages, [(1, id)]);
    stop.send(true).unwrap();
    tokio::time::timeout(WAIT, life).await.unwrap().unwrap();
}
