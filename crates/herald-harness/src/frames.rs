//! Herald frames over a WebSocket ([`Ws`]): a client frame in a codec's
//! frame kind (text for JSON, binary for MessagePack), a server frame out
//! of a data frame, and the `welcome` that opens every connection.

use anyhow::{bail, Context};
use futures_util::StreamExt;
use herald_protocol::{ClientFrame, Codec, DecodeError, FrameKind, ServerFrame, Welcome};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A client WebSocket over plain TCP.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A client frame as `codec` sends it.
pub fn encode(codec: Codec, frame: &ClientFrame) -> WsMessage {
    let bytes = codec.encode_client(frame);
    match codec.frame_kind() {
        FrameKind::Text => WsMessage::Text(
            String::from_utf8(bytes.to_vec())
                .expect("JSON frames are UTF-8")
                .into(),
        ),
        FrameKind::Binary => WsMessage::Binary(bytes),
    }
}

/// The server frame in a data frame; `None` for control frames.
pub fn decode(codec: Codec, msg: &WsMessage) -> Option<Result<ServerFrame, DecodeError>> {
    let bytes: &[u8] = match msg {
        WsMessage::Text(t) => t.as_bytes(),
        WsMessage::Binary(b) => b,
        _ => return None,
    };
    Some(codec.decode_server(bytes))
}

/// Reads `ws` up to the node's first frame, which must be its `welcome`
/// (a connection counts as up only once the node has welcomed it, i.e.
/// authenticated and registered it).
pub async fn welcome(ws: &mut Ws, codec: Codec) -> anyhow::Result<Welcome> {
    while let Some(msg) = ws.next().await {
        let msg = msg.context("reading welcome")?;
        match decode(codec, &msg) {
            Some(Ok(ServerFrame::Welcome(w))) => return Ok(w),
            Some(Ok(other)) => bail!("expected welcome, got {other:?}"),
            Some(Err(e)) => bail!("undecodable first frame: {e}"),
            None if matches!(msg, WsMessage::Close(_)) => {
                bail!("closed before welcome: {msg:?}")
            }
            None => continue, // ping/pong
        }
    }
    bail!("connection ended before welcome")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_goes_as_text_and_msgpack_as_binary() {
        let ping = ClientFrame::Ping { rid: "p".into() };
        assert!(matches!(encode(Codec::Json, &ping), WsMessage::Text(_)));
        assert!(matches!(
            encode(Codec::MsgPack, &ping),
            WsMessage::Binary(_)
        ));
        assert!(decode(Codec::Json, &WsMessage::Ping(Default::default())).is_none());
    }
}
