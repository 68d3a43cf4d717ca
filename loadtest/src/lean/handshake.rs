//! The HTTP/1.1 upgrade of a lean connection: one fixed request (the token
//! in the query, the codec as the subprotocol) and a check of the 101
//! answer's `Sec-WebSocket-Accept`, with tungstenite's key helpers.

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};

/// The most the answer's head may take.
const MAX_HEAD: usize = 8 << 10;

/// The upgrade request for `path` (with its query) on `host`.
pub fn request(host: &str, path: &str, key: &str, subprotocol: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
    )
}

/// Checks the answer's head (status line and headers, through the blank
/// line) to a request made with `key`.
pub fn check_response(head: &[u8], key: &str, subprotocol: &str) -> anyhow::Result<()> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut parts = status.split(' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) || parts.next() != Some("101") {
        bail!("upgrade refused: {status}");
    }
    let (mut accept, mut upgrade, mut connection) = (None, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = Some(value);
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") && value != subprotocol {
            bail!("server chose subprotocol {value:?}, asked for {subprotocol:?}");
        }
    }
    if !upgrade || !connection {
        bail!("101 without Upgrade: websocket and Connection: upgrade");
    }
    match accept {
        Some(a) if a == derive_accept_key(key.as_bytes()) => Ok(()),
        Some(a) => bail!("wrong Sec-WebSocket-Accept {a:?}"),
        None => bail!("no Sec-WebSocket-Accept"),
    }
}

/// Upgrades `stream` to a WebSocket: returns the bytes that came after the
/// answer's head (the start of the first frames).
pub async fn upgrade(
    stream: &mut TcpStream,
    host: &str,
    path: &str,
    subprotocol: &str,
) -> anyhow::Result<Vec<u8>> {
    let key = generate_key();
    stream
        .write_all(request(host, path, &key, subprotocol).as_bytes())
        .await
        .context("sending the upgrade request")?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let searched = buf.len().saturating_sub(3);
        if buf.len() == buf.capacity() {
            buf.reserve(1024);
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .context("reading the upgrade answer")?;
        if n == 0 {
            bail!("connection closed during the upgrade");
        }
        if let Some(at) = buf[searched..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = searched + at + 4;
            check_response(&buf[..end], &key, subprotocol)?;
            return Ok(buf.split_off(end));
        }
        if buf.len() > MAX_HEAD {
            bail!("upgrade answer head over {MAX_HEAD} bytes");
        }
    }
}
