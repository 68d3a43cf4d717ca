//! `/socket.io/`: the clients of the Node.js socket.io server Herald
//! replaces, served unchanged while they are moved to the SDK
//! (`docs/migrating-from-socketio.md`). Socket.IO v5 over Engine.IO v4,
//! WebSocket and long-polling, by socketioxide: a tower layer in front of
//! the router, added only when `socketio.enabled` (off, nothing of it is
//! routed).
//!
//! It is a transport, not a second server: each session runs the one
//! connection loop (`connection.rs`) over a [`SioSink`], so identity,
//! presence, counts, the device's cursor, the backlog on reconnect, limits
//! and metrics are those of a WebSocket connection. What is Socket.IO's is
//! here: the handshake (who, from the session cookie or the `auth`
//! payload's token — never from what the client later claims), and the old
//! events turned into frames:
//!
//! - `user_login {userId, socketId}` → `push_message` (`login.rs`); a
//!   `userId` other than the session's user gets an `error` event and
//!   changes nothing (the old server believed it);
//! - `todo {receiver_id, …}` with an ack callback → a `send` frame from
//!   the session's user (blocking, limits, idempotency `key` as for
//!   `send`), answered `{id, seq}` or `{error, message}`;
//! - what the loop writes → events (`sink.rs`): `todo_message` for a
//!   private message, `message` for the others, each with an ack callback
//!   that moves the device's cursor.

mod login;
mod sink;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, SEC_WEBSOCKET_KEY};
use axum::http::Uri;
use serde::Deserialize;
use serde_json::{Map, Value};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, TransportType};
use tokio::sync::mpsc;

pub(super) use sink::SioSink;
use sink::{SioIn, Todo};

use super::connection::run_socketio;
use crate::auth::Authenticator;
use crate::node::Node;

/// Events of one session waiting for its connection loop; a client that
/// emits faster than its requests are answered waits here (its handlers
/// await the send), as a WebSocket client waits on TCP.
const EVENT_QUEUE: usize = 64;

/// How long an emitted message waits for its ack callback; after this its
/// seq stays unacknowledged (it comes again on the next connect).
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// The handshake's `auth` payload (`io(url, {auth: {...}})`); both fields
/// optional: an old client sends none and is known by its session cookie.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandshakeAuth {
    /// A Herald user token, as `?token=` on `/ws`.
    token: Option<String>,
    /// The device whose cursor this session resumes from and moves.
    device: Option<String>,
}

/// Who the handshake said the session is, and its events' queue, kept on
/// the socket between the middleware and the connect handler.
#[derive(Debug, Clone)]
struct Identity {
    user: String,
    device: String,
    /// What the event handlers queue for the connection loop, until
    /// `connect` hands it to the loop.
    events: Arc<Mutex<Option<mpsc::Receiver<SioIn>>>>,
}

/// The layer serving `/socket.io/`, or `None` when `socketio.enabled` is off.
pub fn layer(node: &Arc<Node>) -> Option<SocketIoLayer> {
    let settings = &node.settings.socketio;
    if !settings.enabled {
        return None;
    }
    let ws = &node.settings.ws;
    let heartbeat = Duration::from_millis(ws.heartbeat_ms);
    let builder = SocketIo::builder()
        .ping_interval(heartbeat)
        .ping_timeout(heartbeat)
        .ack_timeout(ACK_TIMEOUT)
        .max_buffer_size(ws.outbound_queue.max(16))
        .max_payload(ws.max_message_size as u64)
        .ws_max_message_size(ws.max_message_size)
        .ws_read_buffer_size(ws.read_buffer_size);
    let builder = if settings.polling {
        builder.transports([TransportType::Polling, TransportType::Websocket])
    } else {
        builder.transports([TransportType::Websocket])
    };
    let (layer, io) = builder.build_layer();
    let (auth_node, connect_node) = (node.clone(), node.clone());
    let authenticate = move |s: SocketRef, TryData(auth): TryData<HandshakeAuth>| {
        let node = auth_node.clone();
        async move { authenticate(&node, &s, auth).await }
    };
    let connect = move |s: SocketRef| {
        let node = connect_node.clone();
        async move { connect(node, s) }
    };
    io.ns("/", connect.with(authenticate));
    Some(layer)
}

/// Where socketioxide serves (its `req_path`, matched as a prefix).
const PATH: &str = "/socket.io";

/// A request to `/socket.io/` as a session keeps it: Engine.IO keeps each
/// session's handshake request (its `req_parts`, which `authenticate` reads
/// when the Socket.IO CONNECT comes). hyper parses the URI and header
/// values as slices of the connection's read buffer, and axum's router
/// adds the URI again (`OriginalUri`), so a request kept as it came keeps
/// that buffer (8 KiB or more) for the session's life. This one owns its
/// URI and only the headers that are read: those of
/// [`Authenticator::HANDSHAKE_HEADERS`], and Engine.IO's own
/// (`Sec-WebSocket-Key` to answer the upgrade, `Content-Type` of a
/// long-polling POST); of the extensions only hyper's `OnUpgrade`, which
/// the WebSocket transport awaits. Other paths pass as they are.
pub async fn own_request(req: Request) -> Request {
    if !req.uri().path().starts_with(PATH) {
        return req;
    }
    let (parts, body) = req.into_parts();
    let mut kept = Request::new(body);
    *kept.method_mut() = parts.method;
    *kept.version_mut() = parts.version;
    *kept.uri_mut() = Uri::try_from(parts.uri.to_string()).unwrap_or(parts.uri);
    let names = Authenticator::HANDSHAKE_HEADERS
        .into_iter()
        .chain([SEC_WEBSOCKET_KEY, CONTENT_TYPE]);
    let mut owned = Vec::new();
    for name in names {
        for value in parts.headers.get_all(&name) {
            let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) else {
                continue;
            };
            copy.set_sensitive(value.is_sensitive());
            owned.push((name.clone(), copy));
        }
    }
    // Sized to what it holds: grown from empty, a map makes room for 6.
    let mut headers = HeaderMap::with_capacity(owned.len());
    for (name, value) in owned {
        headers.append(name, value);
    }
    *kept.headers_mut() = headers;
    let mut extensions = parts.extensions;
    if let Some(upgrade) = extensions.remove::<hyper::upgrade::OnUpgrade>() {
        kept.extensions_mut().insert(upgrade);
    }
    kept
}

/// Refuses a handshake as `/ws` does (draining, rebalancing, shedding,
/// credentials, limits); the client gets `connect_error` with the reason.
async fn authenticate(
    node: &Arc<Node>,
    s: &SocketRef,
    auth: Result<HandshakeAuth, socketioxide::ParserError>,
) -> Result<(), String> {
    let refuse = |cause: &str, message: String| {
        node.metrics.handshake_refused(cause);
        Err(message)
    };
    let auth = match auth {
        Ok(auth) => auth,
        Err(e) => {
            return refuse(
                "bad_credentials",
                format!("auth: {e} (known fields: token, device)"),
            )
        }
    };
    if node.is_shutting_down() {
        return refuse(
            "draining",
            "this node is draining; connect to another".into(),
        );
    }
    if node.rebalance_door.admit().is_err() {
        return refuse(
            "rebalancing",
            "this node is moving connections; connect to another".into(),
        );
    }
    if node.admission.admit(node.hub.connection_count()).is_err() {
        return refuse("overloaded", "this node is overloaded; retry later".into());
    }
    let headers = &s.req_parts().headers;
    let user = match node.auth().handshake(headers, auth.token.as_deref()).await {
        Ok(user) => user,
        Err(err) => return refuse("unauthorized", err.message),
    };
    if let Err(err) = crate::limits::admit(&node.settings.limits, &node.hub, &user) {
        return refuse("user_connections", err.message);
    }
    let device = match crate::auth::device(auth.device) {
        Ok(device) => device,
        Err(err) => return refuse("bad_device", err.message),
    };
    let events = wire_events(node, s, &user);
    s.extensions.insert(Identity {
        user,
        device,
        events: Arc::new(Mutex::new(Some(events))),
    });
    Ok(())
}

/// A session that passed its handshake: its connection loop over a
/// [`SioSink`], fed by the events [`wire_events`] queued.
fn connect(node: Arc<Node>, s: SocketRef) {
    let Some(Identity {
        user,
        device,
        events,
    }) = s.extensions.get::<Identity>()
    else {
        let _ = s.disconnect();
        return;
    };
    let Some(rx) = events.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        let _ = s.disconnect();
        return;
    };
    tokio::spawn(run_socketio(SioSink::new(s, rx), node, user, device));
}

/// The session's event handlers, registered by the handshake middleware:
/// socketioxide sends the Socket.IO CONNECT before it calls the connect
/// handler, and an old client emits `user_login` as soon as it is
/// connected, so handlers registered in the connect handler could miss it
/// (an event with no handler yet is dropped; seen under load). What they
/// queue waits in the returned receiver until the loop takes it.
fn wire_events(node: &Arc<Node>, s: &SocketRef, user: &str) -> mpsc::Receiver<SioIn> {
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    {
        let (tx, node, user) = (tx.clone(), node.clone(), user.to_owned());
        s.on(
            "user_login",
            move |s: SocketRef, TryData(login): TryData<login::UserLogin>| {
                let (tx, node, user) = (tx.clone(), node.clone(), user.clone());
                async move { user_login(&node, &s, &user, login, &tx).await }
            },
        );
    }
    {
        let tx = tx.clone();
        let next = Arc::new(AtomicU64::new(0));
        s.on(
            "todo",
            move |TryData(todo): TryData<Value>, ack: AckSender| {
                let (tx, next) = (tx.clone(), next.clone());
                async move {
                    let rid = format!("todo-{}", next.fetch_add(1, Ordering::Relaxed));
                    match todo
                        .map_err(|e| e.to_string())
                        .and_then(|t| send_frame(&rid, t))
                    {
                        Ok(frame) => {
                            // No loop to take it: the node is shutting down
                            // (`transport.rs`, `moves_on_drain`).
                            let todo = Box::new(Todo { rid, frame, ack });
                            if let Err(unsent) = tx.send(SioIn::Todo(todo)).await {
                                if let SioIn::Todo(todo) = unsent.0 {
                                    let _ = todo.ack.send(&serde_json::json!({
                                        "error": "unavailable",
                                        "message": "this node is shutting down; send again after the reconnect",
                                    }));
                                }
                            }
                        }
                        Err(message) => {
                            let _ = ack.send(&serde_json::json!({
                                "error": "invalid",
                                "message": message,
                            }));
                        }
                    }
                }
            },
        );
    }
    s.on_disconnect(move || {
        let tx = tx.clone();
        async move {
            let _ = tx.send(SioIn::Gone).await;
        }
    });
    rx
}

/// `user_login`: `push_message` for the session's user, whose cursors then
/// stand where the push read the inbox (the old client has what it holds).
async fn user_login(
    node: &Arc<Node>,
    s: &SocketRef,
    user: &str,
    login: Result<login::UserLogin, socketioxide::ParserError>,
    tx: &mpsc::Sender<SioIn>,
) {
    let error = |code: &str, message: String| {
        let _ = s.emit(
            "error",
            &serde_json::json!({"error": code, "message": message}),
        );
    };
    let claimed = match login {
        Ok(login) => login.user(),
        Err(e) => return error("invalid", format!("user_login: {e}")),
    };
    match claimed {
        Some(claimed) if claimed == user => {}
        Some(_) => {
            return error(
                "forbidden",
                "user_login: userId is not the user this session signed in as".into(),
            )
        }
        None => {
            return error(
                "invalid",
                "user_login: userId must be a string or number".into(),
            )
        }
    }
    match login::push_message(node, user).await {
        Ok((push, as_of)) => {
            let _ = s.emit("push_message", &push);
            for stream in herald_protocol::Stream::ALL {
                let seq = as_of[stream.index()];
                if seq > 0 {
                    let ack = serde_json::json!({"type": "ack", "stream": stream, "seq": seq});
                    let _ = tx.send(SioIn::Frame(ack.to_string())).await;
                }
            }
        }
        Err(e) => error("unavailable", format!("user_login: {e}")),
    }
}

/// A `todo` as the `send` frame a native client would write: `to` from
/// `receiver_id` (a string or a number), the text from `body`, `content`,
/// `text` or `message` (else the `todo` itself, as JSON), `title` and an
/// idempotency `key` when given, and the whole `todo` as the message's
/// `data` (which `todo_message` spreads back out for the receiver).
fn send_frame(rid: &str, todo: Value) -> Result<String, String> {
    let Value::Object(todo) = todo else {
        return Err("todo: expected an object with receiver_id".into());
    };
    let to = match todo.get("receiver_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("todo: receiver_id must be a string or a number".into()),
        None => return Err("todo: receiver_id is required".into()),
    };
    let text = |field: &str| match todo.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let body = ["body", "content", "text", "message"]
        .iter()
        .find_map(|f| text(f))
        .unwrap_or_else(|| Value::Object(todo.clone()).to_string());
    let mut frame = Map::new();
    frame.insert("type".into(), "send".into());
    frame.insert("rid".into(), rid.into());
    frame.insert("to".into(), to.into());
    frame.insert("body".into(), body.into());
    if let Some(title) = text("title") {
        frame.insert("title".into(), title.into());
    }
    if let Some(key) = text("key") {
        frame.insert("key".into(), key.into());
    }
    frame.insert("data".into(), Value::Object(todo));
    Ok(Value::Object(frame).to_string())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::OriginalUri;
    use axum::http::header::{COOKIE, USER_AGENT};
    use bytes::Bytes;

    use super::*;

    /// A request parsed as hyper does: URI and header values slices of the
    /// connection's read buffer, the URI again in axum's `OriginalUri`.
    fn parsed(buffer: &Bytes, path: &str) -> Request {
        let at = |needle: &str| {
            let text = std::str::from_utf8(buffer).unwrap();
            let start = text.find(needle).unwrap();
            buffer.slice(start..start + needle.len())
        };
        let uri = Uri::from_maybe_shared(at(path)).unwrap();
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = uri.clone();
        req.extensions_mut().insert(OriginalUri(uri));
        for (name, value) in [(COOKIE, "connect.sid=s%3Aabc"), (USER_AGENT, "agent/1.0")] {
            let value = HeaderValue::from_maybe_shared(at(value)).unwrap();
            req.headers_mut().append(name, value);
        }
        req
    }

    const HEAD: &str = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n\
        Cookie: connect.sid=s%3Aabc\r\nUser-Agent: agent/1.0\r\n\r\n";

    #[tokio::test]
    async fn a_kept_handshake_request_owns_what_it_keeps() {
        let buffer = Bytes::from(HEAD.as_bytes().to_vec());
        let kept = own_request(parsed(&buffer, "/socket.io/?EIO=4&transport=websocket")).await;
        // Nothing kept points into the read buffer any more.
        assert!(buffer.is_unique());
        assert_eq!(kept.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(kept.headers()[COOKIE], "connect.sid=s%3Aabc");
        // Only the headers the handshake reads.
        assert_eq!(kept.headers().len(), 1);
        assert!(kept.extensions().get::<OriginalUri>().is_none());
    }

    #[tokio::test]
    async fn other_paths_pass_unchanged() {
        let head = HEAD.replace("/socket.io/?EIO=4&transport=websocket", "/ws?device=d");
        let buffer = Bytes::from(head.into_bytes());
        let passed = own_request(parsed(&buffer, "/ws?device=d")).await;
        assert_eq!(passed.headers().len(), 2);
        assert!(passed.extensions().get::<OriginalUri>().is_some());
        assert!(!buffer.is_unique());
    }
}
