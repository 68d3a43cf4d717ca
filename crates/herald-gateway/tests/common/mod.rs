//! Test harness: real nodes on ephemeral ports, real WebSocket clients.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_gateway::{app, Node, Settings};
use herald_protocol::{ClientFrame, Codec, Counts, Message, Reply, ServerFrame, Welcome};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "test-secret";
pub const API_KEY: &str = "test-api-key";
/// Every wait in these tests gives up after this long.
pub const WAIT: Duration = Duration::from_secs(10);

/// Unix time in milliseconds, the unit of `deliver_at` and `until`.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub struct TestNode {
    pub node: Arc<Node>,
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub fn settings() -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.auth.jwt_secret = SECRET.into();
    s.api.key = API_KEY.into();
    // The node shares its runtime with the test's clients on a loaded
    // machine: their work is event-loop lag it would shed for.
    // `tests/admission.rs` turns it on.
    s.admission.enabled = false;
    s
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::with(settings()).await
    }

    pub async fn with(settings: Settings) -> TestNode {
        let listener = settings.server.bind().unwrap();
        let addr = listener.local_addr().unwrap();
        let node = Node::start(settings).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app::serve(node.clone(), listener, async {
            let _ = stopped.await;
        }));
        TestNode {
            node,
            addr,
            stop: Some(stop),
        }
    }

    pub fn token(&self, user: &str) -> String {
        self.node.auth().mint(user, 3600).unwrap()
    }

    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws?{query}", self.addr)
    }

    pub async fn connect(&self, user: &str) -> Client {
        Client::connect(self, user, Codec::Json, None).await
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The server API of a node, in-process or a process.
pub trait Api {
    fn addr(&self) -> std::net::SocketAddr;

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// POST /v1/messages with the API key; returns status and JSON body.
    async fn post(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.post_to("/v1/messages", body).await
    }

    /// POST to `path` with the API key; returns status and JSON body.
    async fn post_to(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp = reqwest::Client::new()
            .post(self.http(path))
            .bearer_auth(API_KEY)
            .timeout(WAIT)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Sends `body` to `users`, asserting 202.
    async fn send_to(&self, users: &[&str], body: &str) -> serde_json::Value {
        let (status, json) = self
            .post(serde_json::json!({"to": {"users": users}, "category": "remind", "body": body}))
            .await;
        assert_eq!(status, 202, "{json}");
        json
    }

    /// `GET /metrics`: the text exposition.
    async fn metrics(&self) -> String {
        reqwest::get(self.http("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// GET with the API key; the JSON body.
    async fn get(&self, path: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(self.http(path))
            .bearer_auth(API_KEY)
            .timeout(WAIT)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Api for TestNode {
    fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub codec: Codec,
    pub welcome: Welcome,
    /// The last `counts` frame read.
    pub counts: Option<Counts>,
}

impl Client {
    pub async fn connect(
        node: &TestNode,
        user: &str,
        codec: Codec,
        device: Option<&str>,
    ) -> Client {
        Self::connect_to(node.addr, &node.token(user), codec, device).await
    }

    pub async fn connect_to(
        addr: std::net::SocketAddr,
        token: &str,
        codec: Codec,
        device: Option<&str>,
    ) -> Client {
        let mut url = format!("ws://{addr}/ws?token={token}");
        if let Some(d) = device {
            url.push_str(&format!("&device={d}"));
        }
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(codec.subprotocol()),
        );
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        let mut client = Client {
            ws,
            codec,
            counts: None,
            welcome: Welcome {
                conn_id: uuid::Uuid::nil(),
                user_id: String::new(),
                node_id: String::new(),
                heartbeat_ms: 0,
                last_seq: 0,
                last_all_seq: 0,
            },
        };
        match client.next().await {
            ServerFrame::Welcome(w) => client.welcome = w,
            other => panic!("expected welcome, got {other:?}"),
        }
        client
    }

    /// The next Herald frame other than `counts` (pings and pongs skipped;
    /// a `counts` frame is kept in `self.counts`).
    pub async fn next(&mut self) -> ServerFrame {
        loop {
            match self.next_any().await {
                ServerFrame::Counts(c) => self.counts = Some(c),
                other => return other,
            }
        }
    }

    /// Reads frames until a `counts` frame satisfying `check` arrives (other
    /// frames are dropped); returns it.
    pub async fn counts_until(&mut self, check: impl Fn(&Counts) -> bool) -> Counts {
        loop {
            if let ServerFrame::Counts(c) = self.next_any().await {
                self.counts = Some(c.clone());
                if check(&c) {
                    return c;
                }
            }
        }
    }

    /// The next Herald frame (pings and pongs skipped).
    pub async fn next_any(&mut self) -> ServerFrame {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no frame in time")
                .expect("connection ended")
                .expect("read error");
            let bytes = match frame {
                WsMessage::Text(t) => {
                    assert_eq!(
                        self.codec,
                        Codec::Json,
                        "text frame on a msgpack connection"
                    );
                    t.as_bytes().to_vec()
                }
                WsMessage::Binary(b) => {
                    assert_eq!(
                        self.codec,
                        Codec::MsgPack,
                        "binary frame on a JSON connection"
                    );
                    b.to_vec()
                }
                WsMessage::Close(c) => panic!("closed: {c:?}"),
                _ => continue,
            };
            return self
                .codec
                .decode_server(&bytes)
                .expect("server frame decodes");
        }
    }

    pub async fn message(&mut self) -> Message {
        match self.next().await {
            ServerFrame::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    pub async fn reply(&mut self) -> Reply {
        match self.next().await {
            ServerFrame::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// Sends a private message and returns its reply.
    pub async fn send_private(&mut self, rid: &str, to: &str, body: &str) -> Reply {
        self.send(ClientFrame::Send {
            rid: rid.into(),
            to: to.into(),
            body: body.into(),
            title: None,
            data: None,
            key: None,
            expires_at: None,
            group_key: None,
            tags: None,
            severity: None,
        })
        .await;
        self.reply().await
    }

    pub async fn send(&mut self, frame: ClientFrame) {
        self.send_raw(self.codec.encode_client(&frame).to_vec())
            .await;
    }

    /// Sends bytes in this connection's frame kind.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        let frame = match self.codec {
            Codec::Json => WsMessage::Text(String::from_utf8(bytes).unwrap().into()),
            Codec::MsgPack => WsMessage::Binary(bytes.into()),
        };
        self.ws.send(frame).await.unwrap();
    }

    /// Reads until the server closes; returns the close code.
    pub async fn closed(&mut self) -> Option<CloseCode> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("not closed in time")
            {
                Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Asserts no Herald frame arrives within `wait`.
    pub async fn quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
                Ok(Some(Ok(WsMessage::Text(t)))) if is_counts(self.codec, t.as_bytes()) => continue,
                Ok(Some(Ok(WsMessage::Binary(b)))) if is_counts(self.codec, &b) => continue,
                Ok(other) => panic!("unexpected frame {other:?}"),
            }
        }
    }
}

fn is_counts(codec: Codec, bytes: &[u8]) -> bool {
    matches!(codec.decode_server(bytes), Ok(ServerFrame::Counts(_)))
}

/// Waits until `check` holds, polling; panics after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, WAIT, check).await
}

/// [`eventually`] for a wait known to be longer than [`WAIT`] (a schedule
/// of retries run to its end): panics after `limit`.
pub async fn eventually_within<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
pub mod process;

/// `sender` pipelines `n` `send`s to `to` (a user with an empty inbox)
/// without waiting, every seventh one invalid: the replies come back in
/// request order, and `receiver` gets the valid messages in order, once each.
pub async fn pipelined_sends_arrive_in_order(
    sender: &mut Client,
    receiver: &mut Client,
    to: &str,
    n: usize,
) {
    let invalid = |i: usize| i % 7 == 3;
    for i in 0..n {
        sender
            .send(ClientFrame::Send {
                rid: format!("p{i}").as_str().into(),
                to: if invalid(i) { String::new() } else { to.into() },
                body: format!("b{i}"),
                title: None,
                data: None,
                key: None,
                expires_at: None,
                group_key: None,
                tags: None,
                severity: None,
            })
            .await;
    }
    let mut expected = Vec::new();
    for i in 0..n {
        let reply = sender.reply().await;
        assert_eq!(
            reply.rid,
            Some(format!("p{i}").as_str().into()),
            "{reply:?}"
        );
        assert_eq!(reply.ok, !invalid(i), "{reply:?}");
        if reply.ok {
            expected.push(format!("b{i}"));
            assert_eq!(reply.seq, Some(expected.len() as u64), "{reply:?}");
        }
    }
    for (k, body) in expected.iter().enumerate() {
        let m = receiver.message().await;
        assert_eq!((m.seq, &m.body), (k as u64 + 1, body));
    }
    receiver.quiet(Duration::from_millis(200)).await;
}
