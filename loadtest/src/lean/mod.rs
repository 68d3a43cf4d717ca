//! The lean client mode of the `conn` and `fanout` workers: an idle
//! connection costs no task and no read buffer.
//!
//! A connection is opened on tokio (TCP connect from the worker's source
//! address, a small hand-rolled HTTP upgrade, reading until the `welcome`),
//! then its socket and its [`Conn`] state are handed to one of the worker's
//! [`Reactors`]: a mio poll per thread that reads every readable socket into
//! one scratch buffer and parses frames incrementally ([`frame`], [`scan`]).
//! What a held connection owns is its file descriptor and a [`Conn`] of
//! about a hundred bytes; pings are answered, broadcasts are counted per
//! round exactly as the tungstenite worker does ([`count`]), and the end of
//! a connection is reported to the same [`Sink`].
//!
//! JSON only: the scanner reads JSON frames (`--codec msgpack` keeps the
//! tungstenite client).

pub mod conn;
pub mod frame;
pub mod handshake;
mod reactor;
pub mod scan;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use conn::{count, Conn, Sink};
pub use reactor::Reactors;

use crate::client::Connector;

/// Opens a lean connection for `user` to `ws_url` (`ws://host:port/path`)
/// and reads until its `welcome`: returns the socket (non-blocking) and
/// its state, ready for [`Reactors::hand_over`]. Deliveries of run `run`
/// that arrive with the welcome go to `sink`.
pub async fn connect(
    connector: &Connector,
    ws_url: &str,
    user: &str,
    run: u32,
    sink: &dyn Sink,
) -> anyhow::Result<(std::net::TcpStream, Conn)> {
    let attempt = async {
        let rest = ws_url
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow!("only ws:// URLs are supported: {ws_url}"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let mut stream = connector.open_tcp(ws_url).await?;
        let token = connector.token(user)?;
        let mut buf = handshake::upgrade(
            &mut stream,
            host,
            &format!("{path}?token={token}"),
            connector.codec.subprotocol(),
        )
        .await
        .context("WebSocket handshake")?;

        let mut conn = Conn::new();
        let mut out = Vec::new();
        let mut n = buf.len();
        buf.resize(n.max(2048), 0);
        loop {
            conn.on_bytes(&buf[..n], run, sink, &mut out)?;
            if !out.is_empty() {
                stream.write_all(&out).await.context("answering")?;
                out.clear();
            }
            if conn.closing() && !conn.welcomed() {
                bail!("closed before welcome");
            }
            if conn.welcomed() {
                break;
            }
            n = stream.read(&mut buf).await.context("reading welcome")?;
            if n == 0 {
                bail!("connection ended before welcome");
            }
        }
        Ok((stream.into_std()?, conn))
    };
    connector.within_timeout(attempt).await
}
