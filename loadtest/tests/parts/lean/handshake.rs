//! The upgrade request and the check of its answer.

use herald_loadtest::lean::handshake::{check_response, request};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn answer(status: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
    )
}

#[test]
fn accepts_the_rfc_example() {
    let a = answer(
        "101 Switching Protocols",
        "sec-websocket-protocol: json\r\n",
    );
    check_response(a.as_bytes(), KEY, "json").unwrap();
}

#[test]
fn refuses_anything_else() {
    let e = check_response(answer("401 Unauthorized", "").as_bytes(), KEY, "json");
    assert!(format!("{:#}", e.unwrap_err()).contains("401"));
    assert!(check_response(answer("101 OK", "").as_bytes(), "other-key", "json").is_err());
    let wrong = answer("101 OK", "sec-websocket-protocol: msgpack\r\n");
    assert!(check_response(wrong.as_bytes(), KEY, "json").is_err());
    let bare = "HTTP/1.1 101 OK\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert!(check_response(bare.as_bytes(), KEY, "json").is_err());
}

#[test]
fn the_request_carries_key_token_and_subprotocol() {
    let r = request("127.0.0.1:80", "/ws?token=abc", KEY, "json");
    assert!(r.starts_with("GET /ws?token=abc HTTP/1.1\r\nHost: 127.0.0.1:80\r\n"));
    assert!(r.contains(&format!("Sec-WebSocket-Key: {KEY}\r\n")));
    assert!(r.contains("Sec-WebSocket-Protocol: json\r\n"));
    assert!(r.ends_with("\r\n\r\n"));
}
