//! One authenticated WebSocket client of the gateway, and the server-API call.
//!
//! Every load-generator connection goes through [`Connector::connect`]: bind a
//! source address (each worker has its own, so more than one ephemeral port
//! range is available), TCP connect, WebSocket handshake with small buffers,
//! then wait for the `welcome` frame. A connection counts as up only once the
//! gateway has welcomed it, i.e. authenticated and registered it.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::future::BoxFuture;
use herald_harness::{session, Backoff, Ctx, Device, Dial, Observer, SDK_ACK_DELAY};
use herald_protocol::{Codec, ServerFrame, Welcome};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::auth::TokenMinter;
use crate::cli::{ws_url, ClientOpts};
use crate::endpoints::Endpoints;
use crate::ports::PortPlan;

pub use herald_harness::Ws;

/// Opens client connections with one set of settings.
#[derive(Clone)]
pub struct Connector {
    minter: TokenMinter,
    pub codec: Codec,
    config: WebSocketConfig,
    timeout: Duration,
    source_ip: Option<Ipv4Addr>,
    /// The source ports of connects from `source_ip` (`ports.rs`).
    ports: Arc<PortPlan>,
    /// Devices reconnect to any node at random, as through a Service.
    service: bool,
    /// With `service`: only to the nodes whose readiness probe passes.
    endpoints: Option<Arc<Endpoints>>,
}

impl Connector {
    pub fn new(opts: &ClientOpts, source_ip: Option<Ipv4Addr>) -> Self {
        // The write buffer stays at its default: tungstenite only grows it
        // while a frame is being written, and clients here write little.
        let config = WebSocketConfig::default()
            .read_buffer_size(opts.read_buffer)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        Connector {
            minter: TokenMinter::new(&opts.secret),
            codec: opts.codec.codec(),
            config,
            timeout: Duration::from_secs(opts.connect_timeout),
            source_ip,
            ports: Arc::default(),
            service: false,
            endpoints: None,
        }
    }

    /// The same, its devices reconnecting as through a Kubernetes
    /// Service: to a node picked at random among all of them (the one
    /// that closed included: one that refuses is another pick after the
    /// backoff).
    pub fn through_service(self) -> Self {
        Connector {
            service: true,
            ..self
        }
    }

    /// Through a Service that routes only to the ready nodes among
    /// `endpoints` (any node while none is).
    pub fn through_ready_service(self, endpoints: Arc<Endpoints>) -> Self {
        Connector {
            service: true,
            endpoints: Some(endpoints),
            ..self
        }
    }

    /// Connects `user` to the gateway WebSocket at `ws_url` (`ws://host:port/ws`)
    /// and returns once the `welcome` frame has arrived.
    pub async fn connect(&self, ws_url: &str, user: &str) -> anyhow::Result<(Ws, Welcome)> {
        let attempt = async {
            let stream = self.open_tcp(ws_url).await?;
            let token = self.minter.token(user)?;
            let mut request = format!("{ws_url}?token={token}").into_client_request()?;
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static(self.codec.subprotocol()),
            );
            let (mut ws, _response) =
                tokio_tungstenite::client_async_with_config(request, stream, Some(self.config))
                    .await
                    .context("WebSocket handshake")?;
            let welcome = herald_harness::frames::welcome(&mut ws, self.codec).await?;
            Ok((ws, welcome))
        };
        self.within_timeout(attempt).await
    }

    /// Runs one connect attempt under the connect timeout.
    pub async fn within_timeout<T>(
        &self,
        attempt: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| anyhow!("connect timed out after {:?}", self.timeout))?
    }

    /// A token for `user`.
    pub fn token(&self, user: &str) -> anyhow::Result<String> {
        self.minter.token(user)
    }

    /// TCP connection to the host of `ws_url` from this connector's source
    /// address, with TCP_NODELAY.
    pub async fn open_tcp(&self, ws_url: &str) -> anyhow::Result<TcpStream> {
        let addr = resolve(ws_url).await?;
        let stream = match self.source_ip {
            Some(ip) => self.ports.connect(ip, addr).await?,
            None => (TcpStream::connect(addr).await)
                .with_context(|| format!("TCP connect to {addr}"))?,
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Decodes a data frame; `None` for control frames.
    pub fn decode(
        &self,
        msg: &WsMessage,
    ) -> Option<Result<ServerFrame, herald_protocol::DecodeError>> {
        herald_harness::frames::decode(self.codec, msg)
    }

    /// Encodes a client frame in this connector's codec.
    pub fn encode(&self, frame: &herald_protocol::ClientFrame) -> WsMessage {
        herald_harness::frames::encode(self.codec, frame)
    }
}

impl Connector {
    /// What the resuming devices of `storm` and `soak` share: this
    /// connector, the nodes (base URLs, in the run's order), the backoff,
    /// the stop signal and the observer.
    pub fn sessions(
        self,
        nodes: &[String],
        backoff: Backoff,
        stop: watch::Receiver<bool>,
        observer: Arc<dyn Observer>,
    ) -> Arc<Ctx> {
        let urls = nodes.iter().map(|n| ws_url(n)).collect();
        let (dial, ack_delay) = (Arc::new(self), SDK_ACK_DELAY);
        Arc::new(Ctx {
            dial,
            urls,
            backoff,
            ack_delay,
            stop,
            observer,
        })
    }
}

/// Starts one [`session`] per device, device i first on node i mod
/// `homes`, at most `concurrency` first connects in flight.
pub async fn start_sessions(
    devices: &[Arc<Device>],
    homes: usize,
    ctx: &Arc<Ctx>,
    concurrency: usize,
) {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    for dev in devices {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            return;
        };
        let home = dev.index % homes.max(1);
        tokio::spawn(session::run(dev.clone(), home, ctx.clone(), Some(permit)));
    }
}

/// The resuming devices of `storm` and `soak` connect as their user's
/// default device, like every other client here.
impl Dial for Connector {
    fn dial<'a>(
        &'a self,
        url: &'a str,
        dev: &'a Device,
    ) -> BoxFuture<'a, anyhow::Result<(Ws, Welcome)>> {
        Box::pin(self.connect(url, &dev.user))
    }

    fn codec(&self) -> Codec {
        self.codec
    }

    fn next_node(&self, current: usize, nodes: usize, refused: &mut u64) -> usize {
        match self.service {
            true => self
                .endpoints
                .as_ref()
                .and_then(|e| e.pick())
                .unwrap_or_else(|| rand::random_range(0..nodes.max(1))),
            false => session::next_node(current, nodes, refused, &mut rand::rng()),
        }
    }
}

/// `ws://host:port/path` → a socket address.
async fn resolve(ws_url: &str) -> anyhow::Result<SocketAddr> {
    let rest = ws_url
        .strip_prefix("ws://")
        .ok_or_else(|| anyhow!("only ws:// URLs are supported: {ws_url}"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    tokio::net::lookup_host(authority)
        .await?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| anyhow!("{authority} has no IPv4 address"))
}

/// Connects one client per name in `users` to `ws_url`, at most
/// `concurrency` attempts at once, and hands each connection (with its
/// index) to `hold` on a task of its own; `live` counts the connections
/// open. Fails if any client could not connect.
pub async fn connect_all<F, Fut>(
    connector: &Arc<Connector>,
    ws_url: &str,
    users: Vec<String>,
    concurrency: usize,
    live: &Arc<AtomicU64>,
    hold: F,
) -> anyhow::Result<()>
where
    F: Fn(usize, Ws) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sem, hold) = (Arc::new(Semaphore::new(concurrency.max(1))), Arc::new(hold));
    let mut connecting = Vec::with_capacity(users.len());
    for (i, user) in users.into_iter().enumerate() {
        let permit = sem.clone().acquire_owned().await?;
        let (connector, url) = (connector.clone(), ws_url.to_owned());
        let (live, hold) = (live.clone(), hold.clone());
        connecting.push(tokio::spawn(async move {
            let r = connector.connect(&url, &user).await;
            drop(permit);
            let (ws, _) = r.with_context(|| format!("connecting {user} to {url}"))?;
            live.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                hold(i, ws).await;
                live.fetch_sub(1, Ordering::Relaxed);
            });
            anyhow::Ok(())
        }));
    }
    for c in connecting {
        c.await??;
    }
    Ok(())
}

/// A server-API client: `timeout` per request, and with `pool` that many
/// idle keep-alive connections per host at most.
pub fn http_client(timeout: Duration, pool: Option<usize>) -> anyhow::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(timeout);
    let builder = match pool {
        Some(n) => builder.pool_max_idle_per_host(n.max(1)),
        None => builder,
    };
    Ok(builder.build()?)
}

/// POSTs `body` to `path` of the server API; succeeds on any 2xx.
pub async fn post_json(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    api_key: &str,
    body: &serde_json::Value,
) -> anyhow::Result<()> {
    api_call(http, reqwest::Method::POST, base, path, api_key, Some(body))
        .await
        .map(drop)
}

/// One server-API request: `method` on `path` of `base`, with `body` as
/// JSON if any. Returns the answer's JSON (`null` when it has no body);
/// an answer but a 2xx is an error that carries the start of its body.
pub async fn api_call(
    http: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    path: &str,
    api_key: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut request = http.request(method.clone(), &url).bearer_auth(api_key);
    if let Some(body) = body {
        request = request.json(body);
    }
    let resp = (request.send().await).with_context(|| format!("{method} {url}"))?;
    let status = resp.status();
    let text = resp.text().await;
    if !status.is_success() {
        let start: String = text.unwrap_or_default().chars().take(300).collect();
        bail!("{method} {url}: {status}: {start}");
    }
    let text = text.with_context(|| format!("{method} {url}: reading the answer"))?;
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{method} {url}: answer is not JSON"))
}
